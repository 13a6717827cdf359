"""drbootstrap: rebuild an entire server environment from a YAML spec after a disaster."""

__version__ = "0.1.0"
