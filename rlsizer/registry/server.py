"""A small schema registry speaking the Confluent REST subset the standard clients use.

Enough for confluent-kafka's ``SchemaRegistryClient``, ``AvroSerializer`` and
``AvroDeserializer`` (and other languages' Confluent serdes): register/lookup,
schemas by global id, subjects and versions, soft/permanent deletes,
compatibility config and tests. Avro only, no schema references. Every change is
appended to the compacted ``_schemas`` topic before it is answered, and the state
is rebuilt from that topic on start, so ids survive restarts. Registrations are
serialised in the server, so concurrent clients get one id per schema. Meant for
the embedded stack: before each write it reads the log through a NOOP marker of
its own (as Confluent does), so a second registry on the same topic never hands out
a taken id; it does not elect a leader, so two registering at the very same moment
are not serialised with each other. A lookup of an unknown id also reads through a
marker (one small write) before answering 40403.

Run: ``python -m rlsizer.registry.server --bootstrap HOST:PORT --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from config.settings import Settings, SettingsError
from rlsizer.registry.log import SchemaLog, SchemaLogError
from rlsizer.registry.state import (
    COMPATIBILITY_LEVELS,
    LogRecord,
    RegistryError,
    RegistryState,
    SchemaVersion,
    config_record,
    schema_not_found,
    schema_record,
    schema_tombstone,
    subject_not_found,
)

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
HOST = "127.0.0.1"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _reply(body: Any, status: int = 200) -> web.Response:
    return _raw(json.dumps(body), status)


def _raw(text: str, status: int = 200) -> web.Response:
    return web.Response(body=text.encode(), status=status, headers={"Content-Type": CONTENT_TYPE})


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() in ("true", "1")


def _count(request: web.Request, name: str, default: int) -> int:
    """A whole-number query parameter (``-1``: no limit); anything else is Confluent's 400/42202-style error."""
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RegistryError(400, 40002, f"{name} must be an integer, got {raw!r}") from None
    if value < -1:
        raise RegistryError(400, 40002, f"{name} must be >= -1, got {value}")
    return value


class RegistryService:
    """State plus log; every change goes through ``_commit`` under one lock."""

    def __init__(self, log: SchemaLog) -> None:
        self.log = log
        self.state = RegistryState()
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        for record in await asyncio.to_thread(self.log.open):
            self.state.apply(record)

    async def _catch_up(self) -> None:
        for record in await asyncio.to_thread(self.log.sync):
            self.state.apply(record)

    async def _commit(self, records: list[LogRecord]) -> None:
        for record in records:
            await asyncio.to_thread(self.log.append, record)
            self.state.apply(record)

    async def register(self, subject: str, text: str) -> SchemaVersion:
        async with self._lock:
            await self._catch_up()
            version, record = self.state.plan_registration(subject, text)
            if record is not None:
                await self._commit([record])
            return version

    async def schema_text(self, schema_id: int) -> str:
        if schema_id not in self.state.texts:
            async with self._lock:
                await self._catch_up()
        try:
            return self.state.texts[schema_id]
        except KeyError:
            raise schema_not_found(f"Schema {schema_id} not found") from None

    async def delete(self, subject: str, version: str | None, permanent: bool) -> list[int]:
        async with self._lock:
            await self._catch_up()
            if version is None:
                targets = self.state.versions(subject, deleted=permanent)
                if not targets:
                    if not permanent and self.state.versions(subject, deleted=True):
                        raise RegistryError(
                            404, 40404, f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently"
                        )
                    raise subject_not_found(subject)
            else:
                try:
                    targets = [self.state.version(subject, version, deleted=permanent)]
                except RegistryError as exc:
                    if permanent or exc.error_code != 40402:
                        raise
                    gone = self.state.version(subject, version, deleted=True)  # 40402 again if it never was
                    raise RegistryError(
                        404,
                        40406,
                        f"Subject '{subject}' Version {gone.version} was soft deleted."
                        "Set permanent=true to delete permanently",
                    ) from None
            if permanent:
                live = [v.version for v in targets if not v.deleted]
                if live:
                    what = f"Subject '{subject}'" if version is None else f"Subject '{subject}' Version {live[0]}"
                    code = 40405 if version is None else 40407
                    raise RegistryError(404, code, f"{what} was not deleted first before being permanently deleted")
                records = [schema_tombstone(v.subject, v.version) for v in targets]
            else:
                records = [schema_record(_deleted(v)) for v in targets]
            await self._commit(records)
            return [v.version for v in targets]

    async def set_config(self, subject: str | None, level: str | None) -> None:
        async with self._lock:
            await self._commit([config_record(subject, level)])


def _deleted(v: SchemaVersion) -> SchemaVersion:
    return SchemaVersion(subject=v.subject, version=v.version, schema_id=v.schema_id, schema=v.schema, deleted=True)


async def _schema_body(request: web.Request) -> str:
    try:
        body = await request.json(loads=json.loads)
    except ValueError:
        raise RegistryError(422, 42201, "Invalid schema: request body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise RegistryError(422, 42201, "Invalid schema: body must be an object with a 'schema' string")
    if body.get("schemaType", "AVRO") not in (None, "AVRO"):
        raise RegistryError(
            422, 42201, f"Invalid schema: schemaType {body['schemaType']!r} is not supported (AVRO only)"
        )
    if body.get("references"):
        raise RegistryError(422, 42201, "Invalid schema: schema references are not supported by the embedded registry")
    schema: str = body["schema"]  # checked above
    return schema


def _schema_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        raise schema_not_found(f"Schema {request.match_info['id']} not found") from None


def build_app(service: RegistryService) -> web.Application:
    state = service.state

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except RegistryError as exc:
            return _reply(exc.body(), exc.status)
        except SchemaLogError as exc:
            return _reply({"error_code": 50001, "message": f"Error in the backend data store: {exc}"}, 500)

    routes = web.RouteTableDef()

    @routes.get("/")
    async def root(_: web.Request) -> web.Response:
        return _reply({})

    @routes.get("/schemas/types")
    async def types(_: web.Request) -> web.Response:
        return _reply(["AVRO"])

    @routes.get("/schemas")
    async def all_schemas(request: web.Request) -> web.Response:
        """Confluent's schema list: every subject's versions (``subjectPrefix``, ``deleted``, ``latestOnly``,
        ``offset``, ``limit``), ordered by subject, then version."""
        deleted, latest_only = _flag(request, "deleted"), _flag(request, "latestOnly")
        found = []
        for name in state.subject_names(deleted=deleted, prefix=request.query.get("subjectPrefix", "")):
            versions = state.versions(name, deleted=deleted)
            found += versions[-1:] if latest_only else versions
        offset, limit = _count(request, "offset", 0), _count(request, "limit", -1)
        found = found[offset:] if limit < 0 else found[offset : offset + limit]
        return _reply([v.as_response() for v in found])

    @routes.get("/schemas/ids/{id}")
    async def by_id(request: web.Request) -> web.Response:
        return _reply({"schema": await service.schema_text(_schema_id(request))})

    @routes.get("/schemas/ids/{id}/schema")
    async def raw_by_id(request: web.Request) -> web.Response:
        return _raw(await service.schema_text(_schema_id(request)))

    @routes.get("/schemas/ids/{id}/versions")
    async def id_versions(request: web.Request) -> web.Response:
        await service.schema_text(_schema_id(request))
        return _reply([{"subject": v.subject, "version": v.version} for v in state.uses_of(_schema_id(request))])

    @routes.get("/schemas/ids/{id}/subjects")
    async def id_subjects(request: web.Request) -> web.Response:
        await service.schema_text(_schema_id(request))
        return _reply(sorted({v.subject for v in state.uses_of(_schema_id(request))}))

    @routes.get("/subjects")
    async def subjects(request: web.Request) -> web.Response:
        deleted = _flag(request, "deleted")
        return _reply(state.subject_names(deleted=deleted, prefix=request.query.get("subjectPrefix", "")))

    @routes.post("/subjects/{subject}")
    async def lookup(request: web.Request) -> web.Response:
        subject, text = request.match_info["subject"], await _schema_body(request)
        if not state.versions(subject, deleted=True):
            raise subject_not_found(subject)
        found = state.find(subject, text, deleted=_flag(request, "deleted"))
        if found is None:
            raise schema_not_found()
        return _reply(found.as_response())

    @routes.delete("/subjects/{subject}")
    async def delete_subject(request: web.Request) -> web.Response:
        return _reply(await service.delete(request.match_info["subject"], None, _flag(request, "permanent")))

    @routes.get("/subjects/{subject}/versions")
    async def versions(request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        found = state.versions(subject, deleted=_flag(request, "deleted"))
        if not found:
            raise subject_not_found(subject)
        return _reply([v.version for v in found])

    @routes.post("/subjects/{subject}/versions")
    async def register(request: web.Request) -> web.Response:
        registered = await service.register(request.match_info["subject"], await _schema_body(request))
        return _reply(registered.as_response())

    @routes.get("/subjects/{subject}/versions/{version}")
    async def version(request: web.Request) -> web.Response:
        m = request.match_info
        return _reply(state.version(m["subject"], m["version"], deleted=_flag(request, "deleted")).as_response())

    @routes.get("/subjects/{subject}/versions/{version}/schema")
    async def version_schema(request: web.Request) -> web.Response:
        m = request.match_info
        return _raw(state.version(m["subject"], m["version"]).schema)

    @routes.delete("/subjects/{subject}/versions/{version}")
    async def delete_version(request: web.Request) -> web.Response:
        m = request.match_info
        return _reply((await service.delete(m["subject"], m["version"], _flag(request, "permanent")))[0])

    async def config_level(request: web.Request) -> str:
        try:
            body = await request.json()
            level = str(body.get("compatibility") or body.get("compatibilityLevel") or "").upper()
        except (ValueError, AttributeError):
            level = ""
        if level not in COMPATIBILITY_LEVELS:
            raise RegistryError(
                422, 42203, f"Invalid compatibility level {level or '(none)'}; valid: {sorted(COMPATIBILITY_LEVELS)}"
            )
        return level

    def subject_config(request: web.Request) -> str:
        subject = request.match_info["subject"]
        if subject in state.configs:
            return state.configs[subject]
        if _flag(request, "defaultToGlobal"):
            return state.compatibility(None)
        raise RegistryError(404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured")

    @routes.get("/config")
    async def get_config(_: web.Request) -> web.Response:
        return _reply({"compatibilityLevel": state.compatibility(None)})

    @routes.put("/config")
    async def put_config(request: web.Request) -> web.Response:
        level = await config_level(request)
        await service.set_config(None, level)
        return _reply({"compatibility": level})

    @routes.delete("/config")
    async def delete_config(_: web.Request) -> web.Response:
        old = state.compatibility(None)
        await service.set_config(None, None)
        return _reply({"compatibilityLevel": old})

    @routes.get("/config/{subject}")
    async def get_subject_config(request: web.Request) -> web.Response:
        return _reply({"compatibilityLevel": subject_config(request)})

    @routes.put("/config/{subject}")
    async def put_subject_config(request: web.Request) -> web.Response:
        level = await config_level(request)
        await service.set_config(request.match_info["subject"], level)
        return _reply({"compatibility": level})

    @routes.delete("/config/{subject}")
    async def delete_subject_config(request: web.Request) -> web.Response:
        old = subject_config(request)
        await service.set_config(request.match_info["subject"], None)
        return _reply({"compatibilityLevel": old})

    async def compatibility(request: web.Request, version: str | None) -> web.Response:
        problems = state.check(request.match_info["subject"], await _schema_body(request), version)
        body: dict[str, Any] = {"is_compatible": not problems}
        if _flag(request, "verbose"):
            body["messages"] = problems
        return _reply(body)

    @routes.post("/compatibility/subjects/{subject}/versions/{version}")
    async def compatible_with_version(request: web.Request) -> web.Response:
        return await compatibility(request, request.match_info["version"])

    @routes.post("/compatibility/subjects/{subject}/versions")
    async def compatible_with_all(request: web.Request) -> web.Response:
        return await compatibility(request, None)

    @routes.get("/mode")
    @routes.get("/mode/{subject}")
    async def mode(_: web.Request) -> web.Response:
        return _reply({"mode": "READWRITE"})

    app = web.Application(middlewares=[errors])
    app.add_routes(routes)
    return app


@dataclass
class RunningRegistry:
    service: RegistryService
    runner: web.AppRunner
    url: str

    async def close(self) -> None:
        await self.runner.cleanup()
        await asyncio.to_thread(self.service.log.close)


async def start_registry(
    kafka_config: Mapping[str, str], port: int, *, host: str = HOST, replication: int = 1
) -> RunningRegistry:
    """Read ``_schemas`` to its end, then listen on ``host:port``; ``close()`` the result when done."""
    service = RegistryService(SchemaLog(kafka_config, replication=replication))
    await service.open()
    runner = web.AppRunner(build_app(service), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        service.log.close()
        raise SchemaLogError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return RunningRegistry(service, runner, f"http://{host}:{port}")


async def _serve(kafka_config: Mapping[str, str], port: int, host: str, replication: int) -> None:
    running = await start_registry(kafka_config, port, host=host, replication=replication)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    s = running.service.state
    print(
        f"schema registry on {running.url}: {len(s.texts)} schemas, {len(s.subjects)} subjects from {running.service.log.topic}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await running.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlsizer.registry.server", description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: RLSIZER_KAFKA_BOOTSTRAP)")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--host", default=HOST)
    parser.add_argument(
        "--replication", type=int, default=None, help="replication of _schemas if created (default: settings)"
    )
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"schema registry: {exc}", file=sys.stderr)
        return 2
    config = settings.kafka_config() | ({"bootstrap.servers": args.bootstrap} if args.bootstrap else {})
    replication = args.replication or settings.topic_replication
    try:
        asyncio.run(_serve(config, args.port, args.host, replication))
    except SchemaLogError as exc:
        print(f"schema registry: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
