package basicauth

import (
	"encoding/base64"
	"testing"
)

func TestParse(t *testing.T) {
	appSecret := base64.StdEncoding.EncodeToString([]byte("app:se:cr:et"))
	tests := []struct {
		desc     string
		value    string
		ok       bool
		user     string
		password string
	}{
		{desc: "one space", value: "Basic " + appSecret, ok: true, user: "app", password: "se:cr:et"},
		{desc: "a tab after the scheme", value: "Basic\t" + appSecret, ok: true, user: "app", password: "se:cr:et"},
		{desc: "any case", value: "bASIC " + appSecret, ok: true, user: "app", password: "se:cr:et"},
		{desc: "blanks around the credential", value: "Basic \t " + appSecret + " \t", ok: true, user: "app", password: "se:cr:et"},
		{desc: "the user as sent, not form-decoded", value: "Basic " + base64.StdEncoding.EncodeToString([]byte("a%20b:s")), ok: true, user: "a%20b", password: "s"},
		{desc: "empty user and password", value: "Basic " + base64.StdEncoding.EncodeToString([]byte(":")), ok: true},
		{desc: "scheme alone", value: "Basic"},
		{desc: "scheme and a blank", value: "Basic "},
		{desc: "no blank after the scheme", value: "Basicx" + appSecret},
		{desc: "a newline is not a blank", value: "Basic\n" + appSecret},
		{desc: "leading blanks", value: " Basic " + appSecret},
		{desc: "not base64", value: "Basic !!not-base64!!"},
		{desc: "URL-safe base64", value: "Basic " + base64.URLEncoding.EncodeToString([]byte("a?>:secret"))},
		{desc: "unpadded base64", value: "Basic " + base64.RawStdEncoding.EncodeToString([]byte("app:s"))},
		{desc: "no colon", value: "Basic " + base64.StdEncoding.EncodeToString([]byte("app"))},
		{desc: "another scheme", value: "Bearer " + appSecret},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			user, password, ok := Parse(test.value)
			if ok != test.ok || ok && (user != test.user || password != test.password) {
				t.Fatalf("Parse(%q) = %q, %q, %t; want %q, %q, %t", test.value, user, password, ok, test.user, test.password, test.ok)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	// given the credential word alone, as the token sources split it
	// when it decodes, then its user and password come back as sent
	if user, password, ok := Decode(base64.StdEncoding.EncodeToString([]byte("u:p"))); !ok || user != "u" || password != "p" {
		t.Fatalf("Decode: %q, %q, %t", user, password, ok)
	}
	// when it does not, then nothing does
	if _, _, ok := Decode("Basic"); ok {
		t.Fatal("Decode of a non-credential")
	}
}
