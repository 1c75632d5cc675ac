package limit

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
)

func TestClientKeySeparatesPublicCallers(t *testing.T) {
	// given one client id
	// when it comes with a secret, then every address shares one key
	if KeyOf("app", true, "10.0.0.1:1") != KeyOf("app", true, "10.0.0.2:2") {
		t.Fatal("a confidential client's key depends on the address")
	}
	// when it comes alone, then each address has its own key, whatever the port
	if KeyOf("app", false, "10.0.0.1:1") == KeyOf("app", false, "10.0.0.2:1") {
		t.Fatal("public callers at two addresses share a key")
	}
	if KeyOf("app", false, "[::1]:1") != KeyOf("app", false, "[::1]:2") {
		t.Fatal("a public caller's key depends on its port")
	}
	if KeyOf("app", false, "10.0.0.1:1") == KeyOf("app", true, "10.0.0.1:1") {
		t.Fatal("a public and a confidential caller share a key")
	}
	// and a 60 KB id is kept as 16 bytes
	if got := len(KeyOf(strings.Repeat("x", 60<<10), true, "")); got != 16 {
		t.Fatalf("key of %d bytes", got)
	}
	if got := AuditClient(strings.Repeat("é", 100)); len(got) > MaxAuditClient+len("…") || !strings.HasSuffix(got, "…") {
		t.Fatalf("audit client %q", got)
	}
}

// basicHeader returns a Basic Authorization value for user and secret as
// sent on the wire.
func basicHeader(user, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+secret))
}

func TestClientID(t *testing.T) {
	form := url.Values{"client_id": {"form-app"}}
	tests := []struct {
		desc          string
		authorization string
		form          url.Values
		exp           string
	}{
		{desc: "Basic user", authorization: basicHeader("app", "secret"), form: form, exp: "app"},
		{desc: "Basic user form-urlencoded", authorization: basicHeader("my+app%3A1%2F%C3%A9", "secret"), exp: "my app:1/é"},
		{desc: "undecodable escape kept as sent", authorization: basicHeader("100%", "secret"), exp: "100%"},
		{desc: "secret with colons", authorization: basicHeader("app", "se:cr:et"), exp: "app"},
		{desc: "empty user", authorization: basicHeader("", "secret"), form: form, exp: ""},
		{desc: "lower-case scheme", authorization: "basic " + base64.StdEncoding.EncodeToString([]byte("app:secret")), exp: "app"},
		{desc: "upper-case scheme", authorization: "BASIC " + base64.StdEncoding.EncodeToString([]byte("app:secret")), exp: "app"},
		{desc: "extra blanks", authorization: "Basic \t " + base64.StdEncoding.EncodeToString([]byte("app:secret")) + " ", exp: "app"},
		{desc: "malformed base64 falls back to the form", authorization: "Basic !!!not-base64", form: form, exp: "form-app"},
		{desc: "URL-safe base64 is not standard", authorization: "Basic " + base64.URLEncoding.EncodeToString([]byte("a?>:secret")), form: form, exp: "form-app"},
		{desc: "missing colon falls back to the form", authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte("app")), form: form, exp: "form-app"},
		{desc: "scheme alone", authorization: "Basic", form: form, exp: "form-app"},
		{desc: "scheme and blank", authorization: "Basic ", form: form, exp: "form-app"},
		{desc: "no blank after the scheme", authorization: "Basicx" + base64.StdEncoding.EncodeToString([]byte("app:secret")), form: form, exp: "form-app"},
		{desc: "bearer is not client auth", authorization: "Bearer tok", form: form, exp: "form-app"},
		{desc: "form client_id", form: form, exp: "form-app"},
		{desc: "nothing", exp: ""},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			got := ClientID(test.authorization, test.form)
			if got != test.exp {
				t.Fatalf("clientID: got %q, want %q", got, test.exp)
			}
			if strings.Contains(got, "secret") {
				t.Fatal("clientID returned the secret")
			}
		})
	}
}

func FuzzClientID(f *testing.F) {
	f.Add(basicHeader("app", "secret"), "my app", "s:e:c", "form-app")
	f.Fuzz(func(t *testing.T, authorization, user, secret, formID string) {
		form := url.Values{"client_id": {formID}}
		// Anything but a Basic value leaves the form's client_id.
		got := ClientID(authorization, form)
		if (len(authorization) < 5 || !strings.EqualFold(authorization[:5], "Basic")) && got != formID {
			t.Fatalf("ClientID(%q) = %q, want the form's %q", authorization, got, formID)
		}
		// A Basic credential built as RFC 6749 §2.3.1 says gives back its user.
		if got := ClientID(basicHeader(url.QueryEscape(user), secret), form); got != user {
			t.Fatalf("clientID of a Basic credential for %q = %q", user, got)
		}
	})
}
