// Module e2e holds everything that tests the plugin from outside: the Yaegi
// loader test, configuration decoding as Traefik does it, the real-Traefik
// suite, its fixtures, the demo and the benchmark harness. It keeps the
// plugin's own go.mod and vendor/ bigcache-only.
module github.com/edgerevoke/tokenrevocation/e2e

go 1.25.0

require (
	github.com/edgerevoke/tokenrevocation v0.0.0
	github.com/mitchellh/mapstructure v1.5.1-0.20231216201459-8508981c8b6c
	github.com/traefik/yaegi v0.16.1
	gopkg.in/yaml.v3 v3.0.1
)

require github.com/allegro/bigcache/v3 v3.1.0 // indirect

replace github.com/edgerevoke/tokenrevocation => ../
