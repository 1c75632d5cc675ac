// Package obs holds what the plugin uses to be observed and to wait: the
// audit trail's sink and line format, the Prometheus text exposition
// format, the retry backoff, the warn-throttle, and the process-wide
// registry that shares one object per name across Traefik's calls of New.
//
// It knows nothing of denylists or tokens: the plugin's root package says
// what is counted and audited, and this package only writes it out. It
// avoids generics, which Yaegi, the interpreter Traefik runs plugins with,
// supports poorly: the registry holds interface{} values.
package obs
