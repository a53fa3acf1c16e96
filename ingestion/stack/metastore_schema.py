"""The Hive metastore's tables in the stack's PostgreSQL database, created once by provisioning.

Left to the clients (datanucleus.schema.autoCreateAll), DataNucleus creates each table the first time some JVM
needs it, inside whatever that JVM is doing: a loader that registered a table (one connection, transaction open
on TBLS) and then needed TBL_PRIVS waited for ever on its own lock, its second connection adding a foreign key to
TBLS. So `adx stack up` creates the whole schema at once, with DataNucleus's SchemaTool over the metastore's own
JDO mapping (package.jdo in pyspark's hive-metastore jar: the exact model Spark's Hive client reads and
writes), and every Spark process then runs with autoCreateAll off.
"""

from __future__ import annotations

import subprocess
import tempfile
import zipfile
from pathlib import Path

from ingestion.settings import Settings
from ingestion.stack.process import StackError, java_binary

SCHEMA_TOOL = "org.datanucleus.store.schema.SchemaTool"
MAPPING = "package.jdo"


def pyspark_jars_dir() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent / "jars"


def create_metastore_schema(settings: Settings, jdbc_url: str, password: str, timeout: float = 180.0) -> None:
    """Create every table of the metastore model in the (empty) database at `jdbc_url`."""
    jars = pyspark_jars_dir()
    [metastore_jar] = sorted(jars.glob("hive-metastore-*.jar"))
    drivers = sorted(settings.jars_dir.glob("postgresql-*.jar"))
    if not drivers:
        raise StackError(f"no PostgreSQL JDBC driver in {settings.jars_dir}: run `make jars`")
    with tempfile.TemporaryDirectory(prefix="adx-metastore-schema-") as work:
        work_dir = Path(work)
        with zipfile.ZipFile(metastore_jar) as jar:
            jar.extract(MAPPING, work_dir)
        properties = work_dir / "schema.properties"
        properties.touch(mode=0o600)  # holds the password
        properties.write_text(
            "\n".join(
                [
                    "javax.jdo.PersistenceManagerFactoryClass=org.datanucleus.api.jdo.JDOPersistenceManagerFactory",
                    "javax.jdo.option.ConnectionDriverName=org.postgresql.Driver",
                    f"javax.jdo.option.ConnectionURL={jdbc_url}",
                    f"javax.jdo.option.ConnectionUserName={settings.metastore_user}",
                    f"javax.jdo.option.ConnectionPassword={password}",
                    "datanucleus.storeManagerType=rdbms",
                    # The identifier and value-generation settings of Hive 2.3's ObjectStore, so that the tables
                    # are named and keyed as its clients expect.
                    "datanucleus.identifierFactory=datanucleus1",
                    "datanucleus.rdbms.useLegacyNativeValueStrategy=true",
                    "datanucleus.schema.autoCreateAll=true",
                ]
            )
            + "\n"
        )
        command = [
            java_binary(),
            "-Xmx256m",
            "-cp",
            f"{jars}/*:{drivers[-1]}",
            SCHEMA_TOOL,
            "-create",
            "-api",
            "JDO",
            "-props",
            str(properties),
            str(work_dir / MAPPING),
        ]
        try:
            result = subprocess.run(command, cwd=work_dir, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as error:
            raise StackError(f"creating the metastore schema took more than {timeout:.0f} s") from error
    if result.returncode != 0 or "completed successfully" not in result.stdout:
        output = (result.stdout + result.stderr).strip().splitlines()[-20:]
        raise StackError("creating the metastore schema failed:\n" + "\n".join(output))
