# AdvertiseX warehouse. `make run` and `make test` set everything up themselves.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JARS_STAMP := .jars/.resolved
KAFKA_STAMP := .kafka/.resolved
HADOOP_STAMP := .hadoop/.resolved
POSTGRES_STAMP := $(VENV)/.postgres
PROMETHEUS_STAMP := $(VENV)/.prometheus
STRACE_STAMP := $(VENV)/.strace
SLAPD_STAMP := $(VENV)/.slapd
BENCH_ARGS ?= --suite all
export DBT_SEND_ANONYMOUS_USAGE_STATS := false

.PHONY: run run-stack airflow elementary test test-fast test-slow test-all bench lint audit setup jars kafka-jars hadoop-jars postgres prometheus clean

## run: set up, then generate → load → transform → report → verify on the embedded warehouse
run: setup
	$(BIN)/adx run

## run-stack: the main job on the shared warehouse: Kafka, HDFS, Postgres metastore, dbt through the Thrift server
## (services started if needed and left running: `.venv/bin/adx stack down`)
run-stack: setup
	$(BIN)/adx run-stack

## airflow: Airflow 3 standalone on 127.0.0.1:$(ADX_AIRFLOW_PORT or 8080) with the DAGs of airflow/dags; starts the
## Kafka broker the ingest DAG reads, and builds the dbt manifest the transform DAG renders from
airflow: setup
	$(BIN)/adx stack up kafka
	$(BIN)/adx airflow-manifest
	$(BIN)/adx airflow standalone

## elementary: the optional Elementary switch (docs/monitoring.md#elementary): the edr CLI, then the pinned dbt
## packages from the dbt hub, or from local copies when ADX_ELEMENTARY_PACKAGES_DIR names a folder holding them
elementary: setup
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-elementary.txt
	$(BIN)/adx elementary enable

## test: set up, then the fast unit tier and the integration tier (Spark, dbt, services); not the slow tier
test: setup
	$(BIN)/pytest -m "not slow"

## test-fast: unit tests only (no Spark, no dbt)
test-fast: setup
	$(BIN)/pytest -m "not integration"

## test-slow: the long end-to-end scenarios only (Airflow DAG runs day by day, the whole shared stack)
test-slow: setup
	$(BIN)/pytest -m slow

## test-all: every tier
test-all: setup
	$(BIN)/pytest

## bench: generate, load and dbt build at 1M, 4M and 10M impressions beside a hand-written PySpark job and DuckDB on
## the same input; fixed cost; incremental run against 1, 7 and 30 days of history; streaming at 1M; analyst queries
## through the Thrift server; adx_transform through Airflow + Cosmos vs one dbt build; the raw zone encrypted vs
## plaintext (BENCH_ARGS to choose)
bench: setup
	$(BIN)/python -m bench.run $(BENCH_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

## audit: known vulnerabilities of every package in the venv (pip-audit against PyPI's advisory data); fails when a
## package could not be audited too (--strict), so that an unreachable advisory service is not a pass
audit: setup
	$(BIN)/pip-audit --vulnerability-service pypi --strict --progress-spinner off

setup: $(STAMP) $(JARS_STAMP) $(KAFKA_STAMP) $(HADOOP_STAMP) $(POSTGRES_STAMP) $(PROMETHEUS_STAMP) $(STRACE_STAMP) $(SLAPD_STAMP)

$(STAMP): requirements.txt requirements-bench.txt pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-bench.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

jars: $(JARS_STAMP)

$(JARS_STAMP): jvm/pom.xml
	mvn --batch-mode --quiet -f jvm/pom.xml dependency:copy-dependencies \
		-DexcludeTransitive=true -DoutputDirectory=$(CURDIR)/.jars
	touch $@

## kafka-jars: the local Kafka broker of `adx stack up` (jvm/kafka/pom.xml) into .kafka/libs, apart from Spark's .jars
kafka-jars: $(KAFKA_STAMP)

$(KAFKA_STAMP): jvm/kafka/pom.xml
	rm -rf .kafka/libs
	mvn --batch-mode --quiet -f jvm/kafka/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.kafka/libs
	touch $@

## hadoop-jars: the HDFS NameNode and DataNode of `adx stack up` (jvm/hadoop/pom.xml) into .hadoop/libs, and
## their web pages (which the Maven jars leave out) into .hadoop/web
hadoop-jars: $(HADOOP_STAMP)

$(HADOOP_STAMP): jvm/hadoop/pom.xml
	rm -rf .hadoop/libs .hadoop/web
	mvn --batch-mode --quiet -f jvm/hadoop/pom.xml dependency:copy-dependencies dependency:unpack@webapps \
		-DincludeScope=runtime -DoutputDirectory=$(CURDIR)/.hadoop/libs
	touch $@

## postgres: the PostgreSQL server of the stack's metastore, from Debian's packages (apt-get; sudo if not root)
postgres: $(POSTGRES_STAMP)

$(POSTGRES_STAMP): scripts/install-postgres.sh $(STAMP)
	scripts/install-postgres.sh
	touch $@

## prometheus: the Prometheus server and promtool of the stack and the alert-rule tests, from Debian's packages
prometheus: $(PROMETHEUS_STAMP)

$(PROMETHEUS_STAMP): scripts/install-prometheus.sh $(STAMP)
	scripts/install-prometheus.sh
	touch $@

## strace: the tracer of the outbound-connection test (tests/pipeline/test_outbound.py), from Debian's packages
$(STRACE_STAMP): scripts/apt-install.sh $(STAMP)
	command -v strace >/dev/null || scripts/apt-install.sh strace "the tracer of the outbound-connection test"
	touch $@

## slapd: the OpenLDAP server of the Thrift server's logins (ingestion/stack/ldap.py), from Debian's packages
$(SLAPD_STAMP): scripts/apt-install.sh $(STAMP)
	test -x /usr/sbin/slapd || scripts/apt-install.sh slapd "the LDAP server of the Thrift server's logins"
	touch $@

clean:
	rm -rf data target logs .jars .kafka .hadoop
