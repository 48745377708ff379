"""The official MCP Python SDK (`mcp` from PyPI) as a client of tta-host, for tests/all/mcp.rs.

Usage: mcp_client.py PLAN_JSON. The plan names the transport (an HTTP URL with keys, or a
stdio command) and the protocol mode (`auto` negotiates 2026-07-28, `legacy` the
2025-11-25 handshake). Prints one JSON object of what the client saw; the Rust test
asserts on it. Nothing here decides pass or fail.
"""

import asyncio
import json
import sys

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError


def connect(plan, key):
    if "command" in plan:
        return Client(StdioServerParameters(command=plan["command"], args=plan["args"], cwd=plan.get("cwd")), mode=plan["mode"])
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return Client(streamable_http_client(plan["url"], http_client=http), mode=plan["mode"], cache=None)


def error_of(e):
    if isinstance(e, MCPError):
        return {"code": e.code, "message": e.error.message, "data": e.error.data}
    if isinstance(e, BaseExceptionGroup):
        return error_of(e.exceptions[0])
    return {"exception": type(e).__name__, "message": str(e)}


def result_of(r):
    return {
        "is_error": bool(r.is_error),
        "structured": r.structured_content,
        "text": [c.text for c in r.content if getattr(c, "type", "") == "text"],
        "meta": r.meta,
    }


async def call(c, name, arguments, **kw):
    try:
        return result_of(await c.call_tool(name, arguments, **kw))
    except Exception as e:  # noqa: BLE001 - the test asserts on what the client raised
        return {"raised": error_of(e)}


async def main(plan):
    seen = {}
    async with connect(plan, plan.get("key")) as c:
        seen["protocol_version"] = c.protocol_version
        tools = []
        cursor = None
        pages = 0
        while True:
            page = await c.list_tools(cursor=cursor)
            pages += 1
            tools += [
                {
                    "name": t.name,
                    "title": t.title,
                    "description": t.description,
                    "input_schema": t.input_schema,
                    "output_schema": t.output_schema,
                    "annotations": t.annotations.model_dump(by_alias=True) if t.annotations else None,
                }
                for t in page.tools
            ]
            cursor = page.next_cursor
            if cursor is None or pages > 20:
                break
        seen["tools"] = tools
        seen["pages"] = pages
        seen["primitive"] = await call(c, "word-count", {"text": "one two three"})
        seen["typed"] = await call(c, "tool-v2", {"a": 1, "b": 2.5})
        progress = []

        async def on_progress(p, total, message):
            progress.append({"progress": p, "message": message})

        seen["workflow"] = await call(c, "text-report", {"text": "hello agents"}, progress_callback=on_progress)
        seen["progress"] = progress
        seen["guest_error"] = await call(c, "word-count", {"text": 5})
        seen["fuel"] = await call(c, "spin-forever", {})
        seen["other_tenants_tool"] = await call(c, "slugify-c", {"text": "x"})
        if "traceparent" in plan:
            seen["traced"] = await call(c, "word-count", {"text": "traced call"}, meta={"traceparent": plan["traceparent"]})
    if "bad_key" in plan:
        try:
            async with connect(plan, plan["bad_key"]) as c:
                seen["bad_key"] = {"connected": c.protocol_version}
        except Exception as e:  # noqa: BLE001
            seen["bad_key"] = error_of(e)
    if "tight_key" in plan:
        async with connect(plan, plan["tight_key"]) as c:
            seen["tight"] = [await call(c, "word-count", {"text": "a"}) for _ in range(2)]
    if "strict_key" in plan:
        async with connect(plan, plan["strict_key"]) as c:
            seen["strict"] = {
                "valid": await call(c, "word-count", {"text": "a b"}),
                "primitive": await call(c, "word-count", {"text": 5}),
                "workflow": await call(c, "text-report", {}),
            }
    print(json.dumps(seen))


asyncio.run(main(json.loads(sys.argv[1])))
