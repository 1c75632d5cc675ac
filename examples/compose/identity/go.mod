// A module of its own only so that the plugin module (the repository root)
// leaves this directory out: go mod vendor and tidy honour every build tag
// but ignore, and this command imports the e2e module's fixtures. It is built
// inside the e2e module: the Dockerfile beside it, and
// e2e/deploy_examples_test.go, put main.go at e2e/cmd/compose-identity.
module github.com/edgerevoke/tokenrevocation/examples/compose/identity

go 1.25.0
