// Package traefik37 runs the tokenrevocation plugin through Traefik
// v3.7.13's own plugin loader (github.com/traefik/traefik/v3/pkg/plugins),
// in process: the plugin is loaded from the working tree by
// plugins.NewBuilder as a local plugin, built per router with
// Builder.Build and the Constructor it returns, from a dynamic
// configuration decoded by Traefik's file-provider decoder, and served on
// loopback. Everything is in the tests; this file only names the package.
package traefik37
