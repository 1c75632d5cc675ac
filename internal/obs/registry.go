package obs

import "sync"

// A Registry holds one shared value per name for the life of the process.
// Traefik calls a plugin's New once per router and again on every
// configuration reload, and never cancels its context: whatever must exist
// once per name (a denylist, an audit sink, a key source) and the goroutines
// it starts are created through a Registry, once. The zero value is empty
// and ready to use.
type Registry struct {
	mu     sync.Mutex
	values map[string]interface{}
}

// Get returns the value called name. The first time, it calls create, under
// the registry's lock so that no other Get of any name runs meanwhile, and
// keeps what create returns unless create fails; created reports that this
// call made it. A failed create is not kept: the next Get tries again.
func (r *Registry) Get(name string, create func() (interface{}, error)) (v interface{}, created bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.values[name]; ok {
		return v, false, nil
	}
	v, err = create()
	if err != nil {
		return nil, false, err
	}
	if r.values == nil {
		r.values = map[string]interface{}{}
	}
	r.values[name] = v
	return v, true, nil
}

// Lookup returns the value called name, nil when there is none.
func (r *Registry) Lookup(name string) interface{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.values[name]
}

// Delete removes the value called name and returns it, nil when there was
// none. The plugin never deletes: tests do, to clean up.
func (r *Registry) Delete(name string) interface{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	v := r.values[name]
	delete(r.values, name)
	return v
}

// Values returns every value held, in no particular order.
func (r *Registry) Values() []interface{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]interface{}, 0, len(r.values))
	for _, v := range r.values {
		out = append(out, v)
	}
	return out
}
