"""metrosight: watchlist face recognition and behaviour analytics for metro camera networks."""

__version__ = "0.1.0"
