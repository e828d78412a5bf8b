"""Arc-Halo: the database of the Arc-Halo Cognitive Fusion Reactor and the client ML code writes through."""

__version__ = "0.1.0"
