//go:build tools

// Package hydra records the Hydra command as a tool dependency.
package hydra

import _ "github.com/ory/hydra/v2"
