"""jointuse: joint use (共同利用) of customer records across group companies over Kafka."""

__version__ = "0.1.0"
