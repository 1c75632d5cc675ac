// Package basicauth reads HTTP Basic credentials (RFC 7617). It is the one
// Basic parser of the plugin: the revoke endpoint's client authentication
// and the client limits read an Authorization value with Parse, and the
// token sources, which check a Basic user and password for a revoked token
// after splitting the value into words their own way, decode the credential
// word with Decode, which Parse calls too.
package basicauth

import (
	"encoding/base64"
	"strings"
)

// Parse returns the user and password of an HTTP Basic Authorization value,
// as sent (not form-decoded). The rules: the scheme "Basic" in any case,
// then a space or a tab, then the credential, spaces and tabs around it
// ignored, which Decode must accept. ok is false for anything else: no
// blank after the scheme, nothing after it, a credential that does not
// decode, or one without a ':'; then user and password mean nothing.
func Parse(value string) (user, password string, ok bool) {
	if len(value) < 6 || (value[5] != ' ' && value[5] != '\t') || !strings.EqualFold(value[:5], "Basic") {
		return "", "", false
	}
	return Decode(strings.Trim(value[6:], " \t"))
}

// Decode decodes the credential of a Basic value, the standard base64 (with
// padding) of user ":" password, into its user and password, as sent (not
// form-decoded); the password may hold more colons. ok is false when it
// does not decode or has no ':', and then user and password mean nothing.
func Decode(credential string) (user, password string, ok bool) {
	decoded, err := base64.StdEncoding.DecodeString(credential)
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(decoded), ":")
}
