package e2e

// The README checks (issue 19): README.md is the plugin's manual, so what it
// shows must be what the code does.
//
// The rule for code blocks, which the README follows:
//
//   - A fenced block tagged yaml, json or jsonl is a complete document and
//     must parse: yaml with yaml.v3 (every document of a multi-document
//     block), json with encoding/json as one document, jsonl line by line.
//   - A block whose first line starts with "# excerpt" is a partial snippet
//     and is skipped. Mark every partial YAML snippet that way.
//   - No toml blocks: the README shows YAML and command-line flags only, so
//     the e2e module needs no TOML parser.
//   - Blocks tagged sh, text or nothing are not parsed.
//
// Every plugin configuration in a complete YAML block, the dynamic
// configuration's http.middlewares.<name>.plugin.tokenrevocation and a
// Middleware resource's spec.plugin.tokenrevocation, is decoded into Config
// the way Traefik does (decodeConfig, config_test.go) and must pass
// tokenrevocation.New. Before New, the values that would reach this
// machine's files or network are checked for their form and then replaced:
// redis.address by a closed loopback port, the host of issuer and jwksURL by
// one, each of redis.sentinels by one, persistPath, a file auditLog,
// adminTokenFile, redis.passwordFile, redis.sentinelPasswordFile,
// redis.caFile and redis.signingSecretFile by files of the test's own, and
// denylist by a name of its own, so that blocks do not share denylists.
//
// The options reference table must list every field of Config and
// RedisConfig by its json name, name nothing else, give each a Type that
// fits the field and a Default that matches CreateConfig; the log table
// must cover every log.Printf of the plugin; the Runbook must have one
// heading per alert of examples/prometheus; every link must resolve.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/edgerevoke/tokenrevocation"
	"github.com/edgerevoke/tokenrevocation/e2e/harness"
	"gopkg.in/yaml.v3"
)

// pendingLinks are link targets being written concurrently with the README
// (issue 19: the Helm, Kubernetes and Compose examples). While one is
// missing its link is logged, not failed; once it exists it is checked like
// any other. Delete an entry when its files have landed.
var pendingLinks = map[string]bool{
	"examples/helm/values.yaml": true,
	"examples/kubernetes/":      true,
	"examples/compose/":         true,
}

// A codeBlock is one fenced block of a Markdown file.
type codeBlock struct {
	lang string
	line int // of the opening fence, 1-based
	body string
}

// excerpt reports whether the block is marked as a partial snippet.
func (b codeBlock) excerpt() bool {
	first, _, _ := strings.Cut(strings.TrimLeft(b.body, "\n"), "\n")
	return strings.HasPrefix(strings.TrimSpace(first), "# excerpt")
}

// markdown is a Markdown file split into its code blocks and its prose
// (the lines outside code blocks, with their line numbers).
type markdown struct {
	blocks []codeBlock
	prose  []proseLine
}

type proseLine struct {
	n    int
	text string
}

func parseMarkdown(t *testing.T, path string) markdown {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var md markdown
	var cur *codeBlock
	var body strings.Builder
	indent := ""
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimLeft(line, " ")
		if strings.HasPrefix(trimmed, "```") {
			if cur == nil {
				cur = &codeBlock{lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), line: n}
				indent = line[:len(line)-len(trimmed)]
				body.Reset()
				continue
			}
			cur.body = body.String()
			md.blocks = append(md.blocks, *cur)
			cur = nil
			continue
		}
		if cur != nil {
			body.WriteString(strings.TrimPrefix(line, indent))
			body.WriteByte('\n')
			continue
		}
		md.prose = append(md.prose, proseLine{n: n, text: line})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s: code block opened at line %d is never closed", path, cur.line)
	}
	return md
}

// A heading is one Markdown heading, with its GitHub anchor.
type heading struct {
	level  int
	text   string
	anchor string
	line   int
}

var headingLine = regexp.MustCompile(`^(#{1,6})\s+(.*?)\s*#*\s*$`)

// headings lists the file's headings with their anchors as GitHub makes
// them: lower case, every character but letters, digits, '-', '_' and
// spaces dropped, spaces made '-', and -1, -2... added to repeats.
func (md markdown) headings() []heading {
	var out []heading
	seen := map[string]int{}
	for _, l := range md.prose {
		m := headingLine.FindStringSubmatch(l.text)
		if m == nil {
			continue
		}
		slug := githubSlug(m[2])
		if n := seen[slug]; n > 0 {
			seen[slug] = n + 1
			slug = fmt.Sprintf("%s-%d", slug, n)
		} else {
			seen[slug] = 1
		}
		out = append(out, heading{level: len(m[1]), text: m[2], anchor: slug, line: l.n})
	}
	return out
}

func githubSlug(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case unicode.IsLetter(r), unicode.IsDigit(r), r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// section returns the prose lines under the heading with the given text,
// up to the next heading of the same or a higher level.
func (md markdown) section(t *testing.T, text string) []proseLine {
	t.Helper()
	level := 0
	var out []proseLine
	for _, l := range md.prose {
		m := headingLine.FindStringSubmatch(l.text)
		if m != nil {
			if level > 0 && len(m[1]) <= level {
				break
			}
			if level == 0 && m[2] == text {
				level = len(m[1])
				continue
			}
		}
		if level > 0 {
			out = append(out, l)
		}
	}
	if level == 0 {
		t.Fatalf("README.md has no heading %q", text)
	}
	return out
}

func readme(t *testing.T) (markdown, string) {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return parseMarkdown(t, filepath.Join(root, "README.md")), root
}

// TestReadmeCodeBlocks parses every complete YAML, JSON and JSON-lines block.
func TestReadmeCodeBlocks(t *testing.T) {
	md, _ := readme(t)
	counts := map[string]int{}
	for _, b := range md.blocks {
		where := fmt.Sprintf("README.md:%d (%s block)", b.line, b.lang)
		if b.lang == "toml" {
			t.Errorf("%s: the README shows YAML and command-line flags only, no TOML", where)
			continue
		}
		if b.excerpt() {
			counts["excerpt"]++
			continue
		}
		switch b.lang {
		case "yaml", "yml":
			if _, err := yamlDocuments(b.body); err != nil {
				t.Errorf("%s does not parse: %v\n%s", where, err, b.body)
			}
		case "json":
			var v any
			if err := json.Unmarshal([]byte(b.body), &v); err != nil {
				t.Errorf("%s does not parse: %v\n%s", where, err, b.body)
			}
		case "jsonl", "ndjson":
			for i, line := range strings.Split(b.body, "\n") {
				if strings.TrimSpace(line) == "" {
					continue
				}
				var v any
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Errorf("%s, line %d does not parse: %v\n%s", where, i+1, err, line)
				}
			}
		case "sh", "text", "":
		default:
			t.Errorf("%s: unknown block language %q (the rule at the top of readme_test.go lists them)", where, b.lang)
			continue
		}
		counts[b.lang]++
	}
	t.Logf("code blocks: %v", counts)
	if counts["yaml"] == 0 {
		t.Fatal("no complete YAML block found: is the README's fence syntax still ```yaml?")
	}
}

// yamlDocuments decodes every document of a YAML block.
func yamlDocuments(body string) ([]map[string]any, error) {
	dec := yaml.NewDecoder(strings.NewReader(body))
	var docs []map[string]any
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		docs = append(docs, doc)
	}
}

// A pluginBlock is one plugin configuration found in the README.
type pluginBlock struct {
	where   string
	name    string // the middleware's name as its provider gives it to New
	options map[string]any
}

func pluginBlocks(t *testing.T, md markdown) []pluginBlock {
	t.Helper()
	var out []pluginBlock
	for _, b := range md.blocks {
		if (b.lang != "yaml" && b.lang != "yml") || b.excerpt() {
			continue
		}
		docs, err := yamlDocuments(b.body)
		if err != nil {
			continue // TestReadmeCodeBlocks reports it
		}
		for i, doc := range docs {
			where := fmt.Sprintf("README.md:%d (document %d)", b.line, i+1)
			middlewares, _ := path(doc, "http", "middlewares").(map[string]any)
			names := make([]string, 0, len(middlewares))
			for name := range middlewares {
				names = append(names, name)
			}
			sort.Strings(names)
			for _, name := range names {
				if opts, found := pluginOptions(middlewares[name], "plugin"); found {
					out = append(out, pluginBlock{
						where:   where + " http.middlewares." + name,
						name:    fmt.Sprintf("readme%d-%s@file", b.line, name),
						options: opts,
					})
				}
			}
			if doc["kind"] == "Middleware" {
				if opts, found := pluginOptions(doc["spec"], "plugin"); found {
					ns, _ := path(doc, "metadata", "namespace").(string)
					name, _ := path(doc, "metadata", "name").(string)
					out = append(out, pluginBlock{
						where:   where + " Middleware " + ns + "/" + name,
						name:    fmt.Sprintf("readme%d-%s-%s@kubernetescrd", b.line, ns, name),
						options: opts,
					})
				}
			}
		}
	}
	return out
}

// path walks nested maps.
func path(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// pluginOptions returns the tokenrevocation options under parent[key].
func pluginOptions(parent any, key string) (map[string]any, bool) {
	plugins, ok := path(parent, key).(map[string]any)
	if !ok {
		return nil, false
	}
	v, found := plugins["tokenrevocation"]
	if !found {
		return nil, false
	}
	if v == nil {
		return map[string]any{}, true
	}
	opts, ok := v.(map[string]any)
	if !ok {
		return map[string]any{"<not a mapping>": v}, true
	}
	return opts, true
}

// jsonNames are the json names of a struct's option fields, lower-cased
// name to name.
func jsonNames(typ reflect.Type) map[string]string {
	out := map[string]string{}
	for i := 0; i < typ.NumField(); i++ {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[strings.ToLower(name)] = name
		}
	}
	return out
}

// TestReadmePluginConfigs decodes every plugin configuration the README
// shows and builds it with New.
func TestReadmePluginConfigs(t *testing.T) {
	md, _ := readme(t)
	blocks := pluginBlocks(t, md)
	if len(blocks) < 5 {
		t.Fatalf("only %d plugin configurations found in the README", len(blocks))
	}
	files := newStandIns(t)
	top := jsonNames(reflect.TypeOf(tokenrevocation.Config{}))
	inRedis := jsonNames(reflect.TypeOf(tokenrevocation.RedisConfig{}))
	for i, pb := range blocks {
		t.Run(fmt.Sprintf("%02d", i), func(t *testing.T) {
			t.Logf("%s", pb.where)
			// New refuses unknown options itself; this names the README block.
			for k, v := range pb.options {
				if _, ok := top[strings.ToLower(k)]; !ok {
					t.Errorf("%s: %q is no option of Config", pb.where, k)
				}
				if redis, ok := v.(map[string]any); ok && strings.EqualFold(k, "redis") {
					for rk := range redis {
						if _, ok := inRedis[strings.ToLower(rk)]; !ok {
							t.Errorf("%s: %q is no option of RedisConfig", pb.where, "redis."+rk)
						}
					}
				}
			}
			opts, err := files.localize(pb.options, fmt.Sprintf("readme-%02d", i))
			if err != nil {
				t.Fatalf("%s: %v", pb.where, err)
			}
			raw, err := yaml.Marshal(opts)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "plugin.yml")
			if err := os.WriteFile(file, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := tokenrevocation.CreateConfig()
			if err := decodeConfig(t, file, cfg); err != nil {
				t.Fatalf("%s: Traefik's decoding fails: %v", pb.where, err)
			}
			if _, err := tokenrevocation.New(context.Background(), http.NotFoundHandler(), cfg, pb.name); err != nil {
				t.Fatalf("%s: New: %v\noptions as tested:\n%s", pb.where, err, raw)
			}
		})
	}
}

// standIns are the test's own files that stand in for the files a README
// configuration names.
type standIns struct {
	dir, password, ca, secrets, adminToken string
}

func newStandIns(t *testing.T) *standIns {
	t.Helper()
	s := &standIns{dir: t.TempDir()}
	write := func(name, content string) string {
		p := filepath.Join(s.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	s.password = write("redis-password", "stand-in-password\n")
	s.secrets = write("signing-secrets", "stand-in-signing-secret-0001\nstand-in-signing-secret-0002\n")
	s.adminToken = write("admin-token", "stand-in-admin-token-0001\n")
	s.ca = write("ca.pem", selfSignedPEM(t))
	return s
}

func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "readme test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// closedPort is a loopback address nothing listens on.
const closedPort = "127.0.0.1:1"

// localize returns a copy of opts whose files and network addresses are
// the test's own (see the top of this file), after checking the form of
// the values it replaces.
func (s *standIns) localize(opts map[string]any, id string) (map[string]any, error) {
	out := map[string]any{}
	for k, v := range opts {
		str, isString := v.(string)
		switch strings.ToLower(k) {
		case "denylist":
			if isString && str != "" {
				v = id + "-" + str
			}
		case "persistpath":
			if isString && str != "" {
				v = filepath.Join(s.dir, id, "revocations.bin")
			}
		case "auditlog":
			if isString && str != "" && str != "stdout" && str != "stderr" {
				v = filepath.Join(s.dir, id+"-audit.log")
			}
		case "admintokenfile":
			if isString && str != "" {
				v = s.adminToken
			}
		case "issuer", "jwksurl":
			if isString && str != "" {
				u, err := url.Parse(str)
				if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return nil, fmt.Errorf("%s %q is not an http or https URL", k, str)
				}
				u.Scheme, u.Host = "http", closedPort
				v = u.String()
			}
		case "redis":
			redis, ok := v.(map[string]any)
			if !ok {
				break
			}
			r := map[string]any{}
			for rk, rv := range redis {
				rs, _ := rv.(string)
				switch strings.ToLower(rk) {
				case "address":
					if _, port, err := net.SplitHostPort(rs); err != nil || port == "" {
						return nil, fmt.Errorf("redis.address %q is not host:port", rs)
					}
					rv = closedPort
				case "sentinels":
					list, _ := rv.([]any)
					local := make([]any, 0, len(list))
					for _, addr := range list {
						if _, port, err := net.SplitHostPort(fmt.Sprint(addr)); err != nil || port == "" {
							return nil, fmt.Errorf("redis.sentinels %v is not host:port", addr)
						}
						local = append(local, closedPort)
					}
					rv = local
				case "passwordfile", "sentinelpasswordfile":
					rv = s.password
				case "cafile":
					rv = s.ca
				case "signingsecretfile":
					rv = s.secrets
				}
				r[rk] = rv
			}
			v = r
		}
		out[k] = v
	}
	return out, nil
}

// optionsRow is one row of the options reference.
type optionsRow struct {
	line                              int
	name, typ, def, rule, reload, doc string
}

func optionsTable(t *testing.T, md markdown) []optionsRow {
	t.Helper()
	var rows []optionsRow
	var columns []string
	for _, l := range md.section(t, "Options reference") {
		text := strings.TrimSpace(l.text)
		if !strings.HasPrefix(text, "|") {
			if columns != nil {
				break // the table ended
			}
			continue
		}
		cells := strings.Split(strings.Trim(text, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if columns == nil {
			columns = cells
			want := []string{"Option", "Type", "Default", "Range or rule", "Reload", "What it does"}
			if !reflect.DeepEqual(columns, want) {
				t.Fatalf("README.md:%d: options reference columns %q, want %q", l.n, columns, want)
			}
			continue
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		if len(cells) != len(columns) {
			t.Errorf("README.md:%d: %d cells, want %d: %s", l.n, len(cells), len(columns), text)
			continue
		}
		rows = append(rows, optionsRow{line: l.n, name: strings.Trim(cells[0], "`"), typ: cells[1], def: cells[2], rule: cells[3], reload: cells[4], doc: cells[5]})
	}
	if len(rows) == 0 {
		t.Fatal("the options reference has no table")
	}
	return rows
}

var codeSpan = regexp.MustCompile("`([^`]*)`")

// firstCode is the first code span of a cell, and whether there is one.
func firstCode(cell string) (string, bool) {
	m := codeSpan.FindStringSubmatch(cell)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// An option is a Config or RedisConfig field as the README names it.
type option struct {
	field reflect.StructField
	value reflect.Value // its value in CreateConfig(); invalid for RedisConfig
}

func configOptions() map[string]option {
	out := map[string]option{}
	def := reflect.ValueOf(tokenrevocation.CreateConfig()).Elem()
	add := func(prefix string, typ reflect.Type, val reflect.Value) {
		for i := 0; i < typ.NumField(); i++ {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			o := option{field: f}
			if val.IsValid() {
				o.value = val.Field(i)
			}
			out[prefix+name] = o
		}
	}
	add("", def.Type(), def)
	add("redis.", reflect.TypeOf(tokenrevocation.RedisConfig{}), reflect.Value{})
	return out
}

// formatDefault is a default as the README's Default column shows it,
// empty for a zero value.
func formatDefault(v reflect.Value) string {
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Int, reflect.Int64:
		if v.Int() == 0 {
			return ""
		}
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Slice:
		if v.Len() == 0 {
			return ""
		}
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(v.Index(i).Interface())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return ""
}

// readmeTypes are the Type column's words for each Go kind.
var readmeTypes = map[reflect.Kind][]string{
	reflect.String:  {"string", "duration"},
	reflect.Int:     {"int"},
	reflect.Int64:   {"int"},
	reflect.Bool:    {"bool"},
	reflect.Slice:   {"list"},
	reflect.Pointer: {"object"},
}

// TestReadmeOptionsReference checks the options table against Config,
// RedisConfig and CreateConfig.
func TestReadmeOptionsReference(t *testing.T) {
	md, _ := readme(t)
	rows := optionsTable(t, md)
	opts := configOptions()
	seen := map[string]bool{}
	for _, r := range rows {
		where := fmt.Sprintf("README.md:%d (%s)", r.line, r.name)
		if seen[r.name] {
			t.Errorf("%s: listed twice", where)
		}
		seen[r.name] = true
		o, ok := opts[r.name]
		if !ok {
			t.Errorf("%s: names no field of Config or RedisConfig (json names, case-sensitive)", where)
			continue
		}
		kind := o.field.Type.Kind()
		if words := readmeTypes[kind]; !contains(words, r.typ) {
			t.Errorf("%s: Type %q, want one of %q for a Go %s", where, r.typ, words, o.field.Type)
		}
		if !strings.HasPrefix(r.reload, "yes") && !strings.HasPrefix(r.reload, "creation") {
			t.Errorf("%s: Reload %q, want yes or creation", where, r.reload)
		}
		if r.doc == "" {
			t.Errorf("%s: no description", where)
		}
		got, hasCode := firstCode(r.def)
		if o.value.IsValid() {
			if want := formatDefault(o.value); want != "" && got != want {
				t.Errorf("%s: Default %q, want `%s` as CreateConfig() has it", where, r.def, want)
			}
		}
		if kind == reflect.Bool && (!o.value.IsValid() || !o.value.Bool()) && (!hasCode || got != "false") {
			t.Errorf("%s: Default %q, want `false`", where, r.def)
		}
	}
	names := make([]string, 0, len(opts))
	for name := range opts {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !seen[name] {
			t.Errorf("the options reference has no row for %q", name)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// A logCall is one log.Printf of the plugin.
type logCall struct {
	where  string
	format string
}

// pluginLogCalls finds every log.Printf (and Print, Println) in the non-test
// files of the plugin package and its internal packages, with its format
// when it is a constant string.
// A function that logs fmt.Sprintf(format, args...) of its own format
// parameter (replicator.warn) is a wrapper: each call of it with a constant
// format counts as a line of its own, the wrapper's last %s replaced by it.
func pluginLogCalls(t *testing.T, root string) []logCall {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	// The plugin's own packages log too (internal/obs: the audit sink).
	inner, err := filepath.Glob(filepath.Join(root, "internal", "*", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, inner...)
	var out []logCall
	wrappers := map[string]string{} // function name: its log format
	type call struct {
		where, callee string
		args          []ast.Expr
	}
	var calls []call
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				c, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				where := fset.Position(c.Pos()).String()
				if rel, err := filepath.Rel(root, where); err == nil {
					where = rel
				}
				x, name := callName(c)
				if x != "log" || !strings.HasPrefix(name, "Print") {
					if name != "" {
						calls = append(calls, call{where: where, callee: name, args: c.Args})
					}
					return true
				}
				format, ok := constString(c.Args)
				if !ok {
					t.Errorf("%s: log.%s without a constant format: the README's log table cannot be checked against it", where, name)
					return true
				}
				for _, a := range c.Args[1:] {
					if inner, ok := a.(*ast.CallExpr); ok {
						if ix, iname := callName(inner); ix == "fmt" && iname == "Sprintf" && len(inner.Args) > 0 {
							if _, isParam := inner.Args[0].(*ast.Ident); isParam {
								wrappers[fn.Name.Name] = format
							}
						}
					}
				}
				out = append(out, logCall{where: where, format: format})
				return true
			})
		}
	}
	for _, c := range calls {
		format, isWrapper := wrappers[c.callee]
		if !isWrapper {
			continue
		}
		inner, ok := constString(c.args)
		if !ok {
			t.Errorf("%s: %s without a constant format", c.where, c.callee)
			continue
		}
		i := strings.LastIndex(format, "%s")
		out = append(out, logCall{where: c.where, format: format[:i] + inner + format[i+2:]})
	}
	return out
}

// callName is a call's package or receiver identifier (empty for a plain
// function) and the function's name.
func callName(c *ast.CallExpr) (string, string) {
	switch fun := c.Fun.(type) {
	case *ast.SelectorExpr:
		if x, ok := fun.X.(*ast.Ident); ok {
			return x.Name, fun.Sel.Name
		}
		return "", fun.Sel.Name
	case *ast.Ident:
		return "", fun.Name
	}
	return "", ""
}

// constString is the first argument as a string, for a literal or a sum of
// literals.
func constString(args []ast.Expr) (string, bool) {
	if len(args) == 0 {
		return "", false
	}
	var eval func(e ast.Expr) (string, bool)
	eval = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			if e.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(e.Value)
			return s, err == nil
		case *ast.BinaryExpr:
			if e.Op != token.ADD {
				return "", false
			}
			a, ok1 := eval(e.X)
			b, ok2 := eval(e.Y)
			return a + b, ok1 && ok2
		case *ast.ParenExpr:
			return eval(e.X)
		}
		return "", false
	}
	return eval(args[0])
}

var (
	formatVerb    = regexp.MustCompile(`%[-+# 0-9.]*[a-zA-Z%]`)
	readmeHoleRef = regexp.MustCompile(`"?<[^>]*>"?`)
)

// fragments are the pieces of s between its holes, of at least 4 bytes.
func fragments(s string, holes *regexp.Regexp) []string {
	var out []string
	for _, f := range holes.Split(s, -1) {
		if len(strings.TrimSpace(f)) >= 4 {
			out = append(out, f)
		}
	}
	return out
}

// TestReadmeLogTable checks that the table of log lines covers every
// log.Printf of the plugin, that each row is a line the plugin writes, and
// that its Prefix and Traefik level columns say what the line carries.
func TestReadmeLogTable(t *testing.T) {
	md, root := readme(t)
	var rows []proseLine
	var text strings.Builder
	for _, l := range md.section(t, "What the plugin logs") {
		text.WriteString(l.text)
		text.WriteByte('\n')
		if strings.HasPrefix(l.text, "| `tokenrevocation:") {
			rows = append(rows, l)
		}
	}
	section := text.String()
	calls := pluginLogCalls(t, root)
	if len(calls) < 10 {
		t.Fatalf("only %d log calls found in %s", len(calls), root)
	}
	for _, c := range calls {
		for _, f := range fragments(c.format, formatVerb) {
			if !strings.Contains(section, f) {
				t.Errorf("%s: the README's log table lacks %q of the line %q", c.where, f, c.format)
			}
		}
	}
	for _, r := range rows {
		cells := strings.Split(strings.Trim(strings.TrimSpace(r.text), "|"), "|")
		if len(cells) != 4 {
			t.Errorf("README.md:%d: %d cells, want 4", r.n, len(cells))
			continue
		}
		line := strings.Trim(strings.TrimSpace(cells[0]), "`")
		matched := false
		for _, c := range calls {
			all := true
			for _, f := range fragments(line, readmeHoleRef) {
				if !strings.Contains(c.format, f) {
					all = false
					break
				}
			}
			if all {
				matched = true
				break
			}
		}
		if !matched {
			t.Errorf("README.md:%d: %q is no line the plugin writes", r.n, line)
		}
		prefix := "none"
		rest := strings.TrimPrefix(line, "tokenrevocation: ")
		for _, p := range []string{"ERROR ", "WARN "} {
			if strings.HasPrefix(rest, p) {
				prefix = strings.TrimSpace(p)
			}
		}
		if got := strings.TrimSpace(cells[1]); got != prefix {
			t.Errorf("README.md:%d: Prefix %q, want %q", r.n, got, prefix)
		}
		// Traefik's Yaegi writes the plugin's standard logger at ERROR
		// (Stderr: logs.NoLevel(..., zerolog.ErrorLevel)), whatever the prefix.
		if got := strings.TrimSpace(cells[2]); got != "ERROR" {
			t.Errorf("README.md:%d: Traefik level %q, want ERROR", r.n, got)
		}
	}
}

// TestReadmeRunbook checks that the Runbook has one heading per alert, and
// that each alert's runbook_url anchor is that heading's.
func TestReadmeRunbook(t *testing.T) {
	md, _ := readme(t)
	anchors := map[string]int{}
	for _, h := range md.headings() {
		anchors[h.anchor]++
	}
	inRunbook := map[string]bool{}
	for _, l := range md.section(t, "Runbook") {
		if m := headingLine.FindStringSubmatch(l.text); m != nil && len(m[1]) == 3 {
			inRunbook[m[2]] = true
		}
	}
	alerts := map[string]bool{}
	for _, g := range readAlertRules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			if !inRunbook[r.Alert] {
				t.Errorf("the Runbook has no heading ### %s", r.Alert)
			}
			anchor := strings.TrimPrefix(r.Annotations["runbook_url"], runbookBase)
			if anchor != githubSlug(r.Alert) || anchors[anchor] != 1 {
				t.Errorf("%s: runbook_url anchor %q does not name exactly one README heading (%d found)", r.Alert, anchor, anchors[anchor])
			}
		}
	}
	for h := range inRunbook {
		if !alerts[h] {
			t.Errorf("the Runbook has a heading ### %s, which is no alert of examples/prometheus", h)
		}
	}
}

var markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestReadmeLinks checks that every relative link of the README names a
// file or directory of the repository, and every anchor a heading.
func TestReadmeLinks(t *testing.T) {
	md, root := readme(t)
	anchorsOf := map[string]map[string]bool{}
	anchors := func(file string) map[string]bool {
		if a, ok := anchorsOf[file]; ok {
			return a
		}
		a := map[string]bool{}
		for _, h := range parseMarkdown(t, filepath.Join(root, file)).headings() {
			a[h.anchor] = true
		}
		anchorsOf[file] = a
		return a
	}
	checked := 0
	for _, l := range md.prose {
		text := codeSpan.ReplaceAllString(l.text, "")
		for _, m := range markdownLink.FindAllStringSubmatch(text, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			checked++
			file, anchor, _ := strings.Cut(target, "#")
			where := fmt.Sprintf("README.md:%d: link %q", l.n, target)
			if file == "" {
				file = "README.md"
			} else if _, err := os.Stat(filepath.Join(root, file)); err != nil {
				if pendingLinks[file] {
					t.Logf("%s: not there yet (pendingLinks)", where)
					continue
				}
				t.Errorf("%s: %v", where, err)
				continue
			}
			if anchor != "" {
				if !strings.HasSuffix(file, ".md") {
					t.Errorf("%s: an anchor into a file that is not Markdown", where)
				} else if !anchors(file)[anchor] {
					t.Errorf("%s: %s has no heading with that anchor", where, file)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no relative link found")
	}
	t.Logf("%d relative links checked", checked)
}
