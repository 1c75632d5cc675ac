// Package ext stands in for github.com/traefik/traefik/dynamic/ext, the
// nested module Traefik v3.7.13's go.mod replaces with ./pkg/config/dynamic/ext
// and its module zip does not carry. Traefik's own is these empty extension
// points, with the same shape.
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}

// RouterIng is a RouterIng extension for ingress provider annotations.
type RouterIng struct{}

// ToRouter converts RouterIng to a Router.
func (r RouterIng) ToRouter() Router {
	return Router{}
}
