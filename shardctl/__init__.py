"""shardctl: validate, map, route, migrate and query suffix-sharded tables."""

__version__ = "0.1.0"
