"""What the Airflow DAGs in airflow/dags/ run: the landing tasks, the dbt interval, Cosmos's configuration,
maintenance and the failure alert. The DAG files only wire these together."""
