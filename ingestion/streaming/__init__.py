"""Streaming ingestion: producers that publish landing data to Kafka, and Spark jobs that land topics in raw tables."""
