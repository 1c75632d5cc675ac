package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/edgerevoke/tokenrevocation/e2e/harness"
	"gopkg.in/yaml.v3"
)

// exportedMetrics are the metric names metricsPath exposes. The example alert
// rules and dashboard may use only these.
var exportedMetrics = []string{
	"tokenrevocation_revocations_total",
	"tokenrevocation_unrevocations_total",
	"tokenrevocation_rejected_requests_total",
	"tokenrevocation_refused_revocations_total",
	"tokenrevocation_evictions_total",
	"tokenrevocation_entries",
	"tokenrevocation_capacity_entries",
	"tokenrevocation_ready",
	"tokenrevocation_load_duration_seconds",
	"tokenrevocation_redis_connected",
	"tokenrevocation_redis_queued_records",
	"tokenrevocation_redis_sync_lag_seconds",
	"tokenrevocation_logouts_total",
	"tokenrevocation_logout_rules",
	"tokenrevocation_grants",
	"tokenrevocation_audit_dropped_total",
	"tokenrevocation_admin_requests_total",
	"tokenrevocation_auth_failures_total",
	"tokenrevocation_bound_refusals_total",
	"tokenrevocation_stream_skipped_total",
	"tokenrevocation_grants_untracked_total",
	"tokenrevocation_overflow_entries",
	"tokenrevocation_loaded_segment_entries",
	"tokenrevocation_jwks_keys",
}

var metricName = regexp.MustCompile(`tokenrevocation_[a-z_]+`)

// runbookBase is where every alert's runbook_url points: the README's
// Runbook section, one heading per alert.
const runbookBase = "https://github.com/edgerevoke/tokenrevocation/blob/main/README.md#"

const (
	alertRulesFile = "tokenrevocation-alerts.yml"
	alertTestsFile = "tokenrevocation-alerts.test.yml"
	dashboardFile  = "tokenrevocation-dashboard.json"
)

func examplesDir(t *testing.T) string {
	t.Helper()
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "examples")
}

// promtool is never skipped for: scripts/deps.sh installs it (Debian's
// prometheus package), and `make test` runs deps.sh first.
func promtool(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (scripts/deps.sh installs it with Debian's prometheus package): %v", err)
	}
	return bin
}

// runPromtool runs promtool in dir and fails the test, with what promtool
// said and context, when it exits non-zero.
func runPromtool(t *testing.T, dir, context string, args ...string) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s%s", strings.Join(args, " "), err, out, context)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readAlertRules(t *testing.T) ruleFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir(t), "prometheus", alertRulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatalf("%s: %v", alertRulesFile, err)
	}
	return rf
}

func TestExamplesAlertRules(t *testing.T) {
	dir := filepath.Join(examplesDir(t), "prometheus")
	runPromtool(t, dir, "", "check", "rules", alertRulesFile)
	runPromtool(t, dir, "", "test", "rules", alertTestsFile)

	rf := readAlertRules(t)
	tests, err := os.ReadFile(filepath.Join(dir, alertTestsFile))
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			if r.For == "" {
				t.Errorf("%s: no for", r.Alert)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if want := runbookBase + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
			}
			for _, a := range []string{"summary", "description"} {
				// absent() has no labels to name.
				if !strings.HasPrefix(r.Expr, "absent(") && !strings.Contains(r.Annotations[a], "$labels.denylist") {
					t.Errorf("%s: annotation %s does not name $labels.denylist: %q", r.Alert, a, r.Annotations[a])
				}
			}
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("%s: no test in %s", r.Alert, alertTestsFile)
			}
		}
	}
	for _, want := range []string{
		"TokenRevocationEvictions",
		"TokenRevocationCapacityRefusals",
		"TokenRevocationClientLimitRefusals",
		"TokenRevocationNotReady",
		"TokenRevocationRedisDisconnected",
		"TokenRevocationRedisSyncLagHigh",
		"TokenRevocationAuditDropped",
		"TokenRevocationMetricsAbsent",
	} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alert %s missing from %s", want, alertRulesFile)
		}
	}
}

// dashboardExprs returns every PromQL expression of the dashboard: each
// target's expr and each query variable's query, keyed by where they are.
func dashboardExprs(t *testing.T, dash map[string]any) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	panels, _ := dash["panels"].([]any)
	for _, p := range panels {
		panel, _ := p.(map[string]any)
		targets, _ := panel["targets"].([]any)
		for _, tg := range targets {
			target, _ := tg.(map[string]any)
			expr, _ := target["expr"].(string)
			exprs[fmt.Sprintf("panel %v %q target %v", panel["id"], panel["title"], target["refId"])] = expr
		}
	}
	templating, _ := dash["templating"].(map[string]any)
	vars, _ := templating["list"].([]any)
	for _, v := range vars {
		variable, _ := v.(map[string]any)
		if variable["type"] != "query" {
			continue
		}
		q := variable["query"]
		if obj, ok := q.(map[string]any); ok {
			q = obj["query"]
		}
		s, _ := q.(string)
		exprs[fmt.Sprintf("variable %v", variable["name"])] = s
	}
	return exprs
}

func readDashboard(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(examplesDir(t), "grafana", dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s is not valid JSON: %v", dashboardFile, err)
	}
	return dash
}

func TestExamplesDashboard(t *testing.T) {
	dash := readDashboard(t)
	if v, _ := dash["schemaVersion"].(float64); v < 36 {
		t.Errorf("schemaVersion %v, want 36 or later", dash["schemaVersion"])
	}

	templating, _ := dash["templating"].(map[string]any)
	vars, _ := templating["list"].([]any)
	var haveDatasource, haveDenylist bool
	for _, v := range vars {
		variable, _ := v.(map[string]any)
		switch variable["name"] {
		case "datasource":
			haveDatasource = variable["type"] == "datasource" && variable["query"] == "prometheus"
		case "denylist":
			haveDenylist = variable["definition"] == "label_values(tokenrevocation_entries, denylist)"
		}
	}
	if !haveDatasource {
		t.Error("no datasource variable of type prometheus")
	}
	if !haveDenylist {
		t.Error("no denylist variable from label_values(tokenrevocation_entries, denylist)")
	}

	ids := map[float64]bool{}
	panels, _ := dash["panels"].([]any)
	if len(panels) == 0 {
		t.Fatal("no panels")
	}
	for _, p := range panels {
		panel, _ := p.(map[string]any)
		id, _ := panel["id"].(float64)
		if id == 0 || ids[id] {
			t.Errorf("panel %q: id %v missing or not unique", panel["title"], panel["id"])
		}
		ids[id] = true
		pos, _ := panel["gridPos"].(map[string]any)
		x, _ := pos["x"].(float64)
		w, _ := pos["w"].(float64)
		h, _ := pos["h"].(float64)
		if w < 1 || h < 1 || x < 0 || x+w > 24 {
			t.Errorf("panel %q: gridPos %v outside the 24-column grid", panel["title"], pos)
		}
		if panel["type"] == "row" {
			continue
		}
		if ds, _ := panel["datasource"].(map[string]any); ds["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the ${datasource} variable", panel["title"], panel["datasource"])
		}
		targets, _ := panel["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q: no targets", panel["title"])
		}
		refIDs := map[any]bool{}
		for _, tg := range targets {
			target, _ := tg.(map[string]any)
			if expr, _ := target["expr"].(string); expr == "" || refIDs[target["refId"]] || target["refId"] == nil {
				t.Errorf("panel %q: target %v without expr or with a repeated refId", panel["title"], target)
			}
			refIDs[target["refId"]] = true
		}
	}

	// promtool parses every expression, as recording rules, with Grafana's
	// interval variables replaced by durations.
	exprs := dashboardExprs(t, dash)
	keys := slices.Sorted(maps.Keys(exprs))
	replacer := strings.NewReplacer("$__rate_interval", "5m", "$__range", "6h", "$__interval", "1m")
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for _, k := range keys {
		expr := exprs[k]
		if strings.HasPrefix(expr, "label_values(") {
			continue // a Grafana function, not PromQL
		}
		n++
		quoted, err := json.Marshal(replacer.Replace(expr))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rules, "      - record: dashboard_expr_%d # %s\n        expr: %s\n", n, k, quoted)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-rules.yml"), []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	runPromtool(t, dir, "dashboard-rules.yml:\n"+rules.String(), "check", "rules", "dashboard-rules.yml")
}

// TestExamplesMetricNames checks that the alert rules and the dashboard use
// only the metrics metricsPath exposes, and that the dashboard shows each.
func TestExamplesMetricNames(t *testing.T) {
	known := map[string]bool{}
	for _, m := range exportedMetrics {
		known[m] = true
	}
	shown := map[string]bool{}
	for where, expr := range dashboardExprs(t, readDashboard(t)) {
		names := metricName.FindAllString(expr, -1)
		if len(names) == 0 {
			t.Errorf("dashboard %s: no tokenrevocation metric in %q", where, expr)
		}
		for _, name := range names {
			if !known[name] {
				t.Errorf("dashboard %s: unknown metric %s in %q", where, name, expr)
			}
			shown[name] = true
		}
	}
	for _, m := range exportedMetrics {
		if !shown[m] {
			t.Errorf("dashboard shows no panel of %s", m)
		}
	}
	for _, g := range readAlertRules(t).Groups {
		for _, r := range g.Rules {
			names := metricName.FindAllString(r.Expr, -1)
			if len(names) == 0 {
				t.Errorf("rule %s%s: no tokenrevocation metric in %q", r.Alert, r.Record, r.Expr)
			}
			for _, name := range names {
				if !known[name] {
					t.Errorf("rule %s%s: unknown metric %s in %q", r.Alert, r.Record, name, r.Expr)
				}
			}
		}
	}
}
