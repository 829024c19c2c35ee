"""NATS JetStream consumers (FastStream): they react to billing events and report
back only through application commands."""
