package resp

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// The replies that tell a client where the data lives: a Sentinel's
// answer to SENTINEL get-master-addr-by-name, ROLE's, and a cluster node's
// MOVED and ASK redirections; and the slot a key hashes to. Each parser
// takes what readReply returned, or the error it returned, and never
// panics on a hostile reply (fuzz_test.go).

// Code is the first word of a server error, such as "MOVED", "ASK",
// "READONLY" or "NOPERM"; "" for any other error (a connection's, or nil).
func Code(err error) string {
	e, ok := err.(*Error) //nolint:errorlint // readReply never wraps it
	if !ok || e == nil {
		return ""
	}
	msg := e.msg
	if i := strings.IndexByte(msg, ' '); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// A Redirect is a cluster node's MOVED or ASK error: the slot and the node
// (host:port) that serves it.
type Redirect struct {
	// Ask is true for ASK (ask that node once, after ASKING), false for
	// MOVED (the slot lives there now).
	Ask  bool
	Slot int
	Addr string
}

// ParseRedirect reads a MOVED or ASK error. A node that does not know its
// own hostname sends ":port" (Redis 7): the host is then from's, the
// address of the node that sent the redirect.
func ParseRedirect(err error, from string) (Redirect, bool) {
	code := Code(err)
	if code != "MOVED" && code != "ASK" {
		return Redirect{}, false
	}
	parts := strings.Fields(err.(*Error).msg) //nolint:errorlint,forcetypeassert // Code checked it
	if len(parts) != 3 {
		return Redirect{}, false
	}
	slot, convErr := strconv.Atoi(parts[1])
	if convErr != nil || slot < 0 || slot >= Slots {
		return Redirect{}, false
	}
	host, port, splitErr := net.SplitHostPort(parts[2])
	if splitErr != nil || !validPort(port) {
		return Redirect{}, false
	}
	if host == "" {
		if host, _, splitErr = net.SplitHostPort(from); splitErr != nil {
			return Redirect{}, false
		}
	}
	return Redirect{Ask: code == "ASK", Slot: slot, Addr: net.JoinHostPort(host, port)}, true
}

// MasterAddr reads a Sentinel's reply to SENTINEL get-master-addr-by-name:
// the master's host:port. A nil reply (ErrNil as err) means the Sentinel
// does not monitor that name.
func MasterAddr(reply interface{}, err error) (string, error) {
	if err == ErrNil { //nolint:errorlint // a sentinel returned as is
		return "", fmt.Errorf("redis: the sentinel does not know this masterName")
	}
	if err != nil {
		return "", err
	}
	items, ok := reply.([]interface{})
	if !ok || len(items) != 2 {
		return "", fmt.Errorf("redis: unexpected reply to SENTINEL get-master-addr-by-name")
	}
	host, okHost := items[0].(string)
	port, okPort := items[1].(string)
	if !okHost || !okPort || host == "" || !validPort(port) {
		return "", fmt.Errorf("redis: unexpected reply to SENTINEL get-master-addr-by-name")
	}
	return net.JoinHostPort(host, port), nil
}

// Role reads ROLE's reply: "master", "slave" or "sentinel".
func Role(reply interface{}) (string, error) {
	items, ok := reply.([]interface{})
	if !ok || len(items) == 0 {
		return "", fmt.Errorf("redis: unexpected reply to ROLE")
	}
	role, ok := items[0].(string)
	if !ok || role == "" {
		return "", fmt.Errorf("redis: unexpected reply to ROLE")
	}
	return role, nil
}

// validPort reports whether port is a TCP port number, 1 to 65535.
func validPort(port string) bool {
	n, err := strconv.Atoi(port)
	return err == nil && n > 0 && n < 65536
}

// Slots is how many hash slots a Redis Cluster has.
const Slots = 16384

// KeySlot is the cluster hash slot of key: CRC16 (XMODEM) of the key, or of
// its hash tag, the part between the first '{' and the first '}' after it
// when that part is not empty, modulo 16384.
func KeySlot(key string) int {
	if tag := HashTag(key); tag != "" {
		key = tag
	}
	return int(crc16(key)) % Slots
}

// HashTag returns key's hash tag, "" when it has none.
func HashTag(key string) string {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return ""
	}
	end := strings.IndexByte(key[open+1:], '}')
	if end <= 0 {
		return ""
	}
	return key[open+1 : open+1+end]
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial 0), which Redis
// Cluster hashes keys with.
func crc16(s string) uint16 {
	crc := uint16(0)
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for b := 0; b < 8; b++ {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
