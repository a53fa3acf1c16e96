"""AdvertiseX ad-data warehouse: synthetic sources, Spark loaders, dbt on Spark."""
