package obs

import (
	"strconv"
	"strings"
)

// TextContentType is the media type of the Prometheus text exposition
// format 0.0.4, the one a TextPage writes. It is written by hand:
// prometheus/client_golang, with its protobuf and reflection-heavy registry,
// is far more than the plugin needs, and its module depends on bigcache
// alone.
const TextContentType = "text/plain; version=0.0.4; charset=utf-8"

// A TextPage is a metrics page being written in the Prometheus text
// exposition format: for each family its HELP and TYPE lines, then its
// series.
type TextPage struct {
	b strings.Builder
}

// Family starts the metric family name of type typ ("counter", "gauge")
// with its HELP and TYPE lines.
func (p *TextPage) Family(name, typ, help string) {
	p.b.WriteString("# HELP " + name + " " + help + "\n# TYPE " + name + " " + typ + "\n")
}

// Series returns a writer of the series of family name whose first label is
// label="value".
func (p *TextPage) Series(name, label, value string) *SeriesWriter {
	return &SeriesWriter{b: &p.b, name: name, label: label, value: value}
}

// Len is the length in bytes of what the page holds.
func (p *TextPage) Len() int {
	return p.b.Len()
}

// String returns what the page holds.
func (p *TextPage) String() string {
	return p.b.String()
}

// A SeriesWriter writes series of one family that share a first label.
type SeriesWriter struct {
	b            *strings.Builder
	name         string
	label, value string
}

// Float writes a series valued v, with the first label and then the labels
// of pairs: name, value, name, value...
func (w *SeriesWriter) Float(v float64, pairs ...string) {
	w.labels(pairs)
	w.b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	w.b.WriteByte('\n')
}

// Int writes a series valued n, in full even beyond 2^53, with the first
// label and then the labels of pairs: name, value, name, value...
func (w *SeriesWriter) Int(n int64, pairs ...string) {
	w.labels(pairs)
	w.b.WriteString(strconv.FormatInt(n, 10))
	w.b.WriteByte('\n')
}

// Bool writes a series valued 1 when b holds, else 0, with the first label
// and then the labels of pairs.
func (w *SeriesWriter) Bool(b bool, pairs ...string) {
	v := 0.0
	if b {
		v = 1
	}
	w.Float(v, pairs...)
}

// labels writes the series' name, its labels and the space before its
// value.
func (w *SeriesWriter) labels(pairs []string) {
	w.b.WriteString(w.name)
	w.b.WriteString("{" + w.label + `="`)
	w.b.WriteString(EscapeLabel(w.value))
	w.b.WriteByte('"')
	for i := 0; i+1 < len(pairs); i += 2 {
		w.b.WriteString("," + pairs[i] + `="`)
		w.b.WriteString(EscapeLabel(pairs[i+1]))
		w.b.WriteByte('"')
	}
	w.b.WriteString("} ")
}

// EscapeLabel escapes a label value: backslash, double quote, line feed.
func EscapeLabel(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}
