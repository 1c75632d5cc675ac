package resp

import (
	"errors"
	"testing"
)

func TestParseRedirect(t *testing.T) {
	tests := []struct {
		desc, msg, from string
		want            Redirect
		ok              bool
	}{
		{desc: "moved", msg: "MOVED 3999 127.0.0.1:6381", want: Redirect{Slot: 3999, Addr: "127.0.0.1:6381"}, ok: true},
		{desc: "ask", msg: "ASK 3999 10.0.0.2:7000", want: Redirect{Ask: true, Slot: 3999, Addr: "10.0.0.2:7000"}, ok: true},
		{desc: "ipv6", msg: "MOVED 1 [::1]:7001", want: Redirect{Slot: 1, Addr: "[::1]:7001"}, ok: true},
		{desc: "unknown endpoint: the sender's host", msg: "MOVED 12 :7002", from: "node-a:7000", want: Redirect{Slot: 12, Addr: "node-a:7002"}, ok: true},
		{desc: "readonly", msg: "READONLY You can't write against a read only replica."},
		{desc: "slot out of range", msg: "MOVED 16384 127.0.0.1:6381"},
		{desc: "negative slot", msg: "MOVED -1 127.0.0.1:6381"},
		{desc: "no port", msg: "MOVED 1 127.0.0.1"},
		{desc: "bad port", msg: "ASK 1 127.0.0.1:0"},
		{desc: "too few words", msg: "MOVED 1"},
		{desc: "too many words", msg: "MOVED 1 a:1 b"},
		{desc: "no host and no sender", msg: "MOVED 1 :7000", from: ""},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			// given a server error, when it is read as a redirect
			got, ok := ParseRedirect(&Error{msg: test.msg}, test.from)
			// then it names the slot and the node, or is no redirect
			if ok != test.ok || got != test.want {
				t.Fatalf("ParseRedirect(%q) = %+v, %v; want %+v, %v", test.msg, got, ok, test.want, test.ok)
			}
		})
	}
	if _, ok := ParseRedirect(errors.New("MOVED 1 a:1"), ""); ok {
		t.Fatal("a connection error read as a redirect")
	}
}

func TestCode(t *testing.T) {
	for msg, want := range map[string]string{
		"READONLY You can't write against a read only replica.": "READONLY",
		"MOVED 1 a:1": "MOVED",
		"NOPERM this user has no permissions to run the 'role' command": "NOPERM",
		"LOADING": "LOADING",
	} {
		if got := Code(&Error{msg: msg}); got != want {
			t.Errorf("Code(%q) = %q, want %q", msg, got, want)
		}
	}
	if Code(errors.New("READONLY")) != "" || Code(nil) != "" || Code(ErrNil) != "" {
		t.Error("Code of an error that is no server error is not empty")
	}
}

func TestMasterAddr(t *testing.T) {
	tests := []struct {
		desc  string
		reply interface{}
		err   error
		want  string
		fails bool
	}{
		{desc: "host and port", reply: []interface{}{"127.0.0.1", "6379"}, want: "127.0.0.1:6379"},
		{desc: "ipv6", reply: []interface{}{"::1", "6380"}, want: "[::1]:6380"},
		{desc: "unknown master name", err: ErrNil, fails: true},
		{desc: "server error", err: &Error{msg: "NOAUTH Authentication required."}, fails: true},
		{desc: "one element", reply: []interface{}{"127.0.0.1"}, fails: true},
		{desc: "integer port", reply: []interface{}{"127.0.0.1", int64(6379)}, fails: true},
		{desc: "port out of range", reply: []interface{}{"127.0.0.1", "70000"}, fails: true},
		{desc: "empty host", reply: []interface{}{"", "6379"}, fails: true},
		{desc: "not an array", reply: "OK", fails: true},
	}
	for _, test := range tests {
		t.Run(test.desc, func(t *testing.T) {
			// given a sentinel's reply, when it is read
			got, err := MasterAddr(test.reply, test.err)
			// then it is the master's address, or an error
			if (err != nil) != test.fails || got != test.want {
				t.Fatalf("MasterAddr(%v, %v) = %q, %v; want %q, failure %v", test.reply, test.err, got, err, test.want, test.fails)
			}
		})
	}
}

func TestRole(t *testing.T) {
	master := []interface{}{"master", int64(3129659), []interface{}{[]interface{}{"127.0.0.1", "9001", "3129242"}}}
	replica := []interface{}{"slave", "127.0.0.1", int64(9000), "connected", int64(3167038)}
	for _, test := range []struct {
		reply interface{}
		want  string
	}{{master, "master"}, {replica, "slave"}, {[]interface{}{"sentinel", []interface{}{"mymaster"}}, "sentinel"}} {
		if got, err := Role(test.reply); err != nil || got != test.want {
			t.Errorf("Role(%v) = %q, %v; want %q", test.reply, got, err, test.want)
		}
	}
	for _, bad := range []interface{}{nil, "master", []interface{}{}, []interface{}{int64(1)}, []interface{}{""}} {
		if _, err := Role(bad); err == nil {
			t.Errorf("Role(%v): no error", bad)
		}
	}
}

// TestKeySlot checks against what redis-cli CLUSTER KEYSLOT answers
// (Redis 7.0.15).
func TestKeySlot(t *testing.T) {
	for key, want := range map[string]int{
		"foo": 12182, "bar": 5061, "hello": 866, "123456789": 12739, "": 0,
		"{user1000}.following": 3443, "{user1000}.followers": 3443,
		"foo{}{bar}": 8363, "foo{{bar}}zap": 4015, "foo{bar}{zap}": 5061,
		"tokenrevocation:edge": 5406, "{tokenrevocation:edge}": 5406, "{tokenrevocation:edge}:signed": 5406,
	} {
		if got := KeySlot(key); got != want {
			t.Errorf("KeySlot(%q) = %d, want %d", key, got, want)
		}
	}
}
