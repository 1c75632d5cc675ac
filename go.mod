module github.com/edgerevoke/tokenrevocation

go 1.22

require github.com/allegro/bigcache/v3 v3.1.0
