"""kasten-bp: application-consistent Kafka backups through a MirrorMaker 2 mirror."""

__version__ = "0.1.0"
