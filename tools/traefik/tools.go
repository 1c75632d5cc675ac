//go:build tools

// Package traefik records the Traefik command as a tool dependency.
package traefik

import _ "github.com/traefik/traefik/v3/cmd/traefik"
