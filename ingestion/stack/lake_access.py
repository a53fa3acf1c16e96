"""Who may read what in the stack's HDFS lake: everything is private to the warehouse's own user (the HDFS
superuser: the loaders, dbt's Thrift server), except `marts.db`, which the analysts' Thrift server may read as
ANALYST_HDFS_USER. Set through the NameNode's WebHDFS API, as the superuser.

    /adx/lake            rwxr-xr-x, default ACL user::rwx,group::---,other::---
                         every database folder created later (a new schema) is private from birth
    /adx/lake/marts.db   rwxr-xr-x, default ACL user::rwx,group::r-x,other::r-x
                         the marts' tables, partitions and files, whenever dbt writes them, are readable
    /adx/lake/<other>.db rwx------ (raw, staging, intermediate, reference, ops, elementary, ...)

Folders below a private database stay as they were: nobody else can pass its folder. Needs
dfs.namenode.acls.enabled (ingestion/stack/hdfs.py).
"""

from __future__ import annotations

import contextlib
import getpass
import json
import urllib.error
import urllib.parse
import urllib.request

from ingestion.settings import Settings
from ingestion.stack.hdfs import HOST, HdfsPorts
from ingestion.stack.process import StackError

ANALYST_HDFS_USER = "analyst"
READABLE_DATABASES = ("marts",)
PRIVATE_BY_DEFAULT = "user::rwx,group::r-x,other::r-x,default:user::rwx,default:group::---,default:other::---"
READABLE_BY_DEFAULT = "user::rwx,group::r-x,other::r-x,default:user::rwx,default:group::r-x,default:other::r-x"


def open_marts_only(settings: Settings) -> None:
    """Make the lake private but for the readable databases (creating their folders if need be). Idempotent."""
    lake = urllib.parse.urlparse(settings.resolved_lake_uri)
    if lake.scheme != "hdfs":
        raise StackError(f"the analysts' Thrift server needs the HDFS lake, but ADX_LAKE_URI is {lake.geturl()}")
    webhdfs = WebHdfs(settings)
    root = lake.path.rstrip("/")
    webhdfs.put(root, "MKDIRS", permission="755")
    webhdfs.put(root, "SETACL", aclspec=PRIVATE_BY_DEFAULT)
    readable = {f"{database}.db" for database in READABLE_DATABASES}
    for name in sorted(readable):
        webhdfs.put(f"{root}/{name}", "MKDIRS", permission="755")
        webhdfs.put(f"{root}/{name}", "SETACL", aclspec=READABLE_BY_DEFAULT)
    for entry in webhdfs.list(root):
        if entry["type"] == "DIRECTORY" and entry["pathSuffix"] not in readable:
            webhdfs.put(f"{root}/{entry['pathSuffix']}", "SETPERMISSION", permission="700")


class WebHdfs:
    """The NameNode's REST API as the HDFS superuser (simple authentication: the OS user that runs the daemons)."""

    def __init__(self, settings: Settings) -> None:
        self.base = f"http://{HOST}:{HdfsPorts.of(settings).namenode_http}/webhdfs/v1"
        self.user = getpass.getuser()

    def put(self, path: str, op: str, **params: str) -> dict:
        return self._call("PUT", path, op, params)

    def list(self, path: str) -> list[dict]:
        return self._call("GET", path, "LISTSTATUS", {})["FileStatuses"]["FileStatus"]

    def _call(self, method: str, path: str, op: str, params: dict[str, str]) -> dict:
        query = urllib.parse.urlencode({"op": op, "user.name": self.user, **params})
        request = urllib.request.Request(f"{self.base}{urllib.parse.quote(path)}?{query}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):  # else not WebHDFS's JSON: keep the body
                detail = json.loads(detail)["RemoteException"]["message"]
            raise StackError(f"WebHDFS {op} {path} failed ({error.code}): {detail}") from error
        except OSError as error:
            raise StackError(f"WebHDFS {op} {path}: no answer from the NameNode at {self.base}: {error}") from error
        return json.loads(body) if body else {}
