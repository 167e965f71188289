"""Drives the daemon's `/mcp` endpoint with the official MCP Python SDK (`mcp` on PyPI).

Usage: mcp_client.py URL TOOL QUERY. Prints one JSON object with the tools listed and the
result of calling TOOL with {query: QUERY}, for the Rust test to assert on.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    url, tool, query = sys.argv[1], sys.argv[2], sys.argv[3]
    async with streamable_http_client(url) as streams:
        read_stream, write_stream = streams[0], streams[1]
        async with ClientSession(read_stream, write_stream) as session:
            init = await session.initialize()
            listed = await session.list_tools()
            result = await session.call_tool(tool, {"query": query})
    # mcp 2.x names fields in snake_case; 1.x used the wire's camelCase.
    def field(obj, snake, camel):
        return getattr(obj, snake) if hasattr(obj, snake) else getattr(obj, camel)

    print(json.dumps({
        "server": field(init, "server_info", "serverInfo").name,
        "tools": [{"name": t.name, "description": t.description, "schema": field(t, "input_schema", "inputSchema")}
                  for t in listed.tools],
        "is_error": bool(field(result, "is_error", "isError")),
        "text": [block.text for block in result.content if getattr(block, "type", None) == "text"],
    }))


if __name__ == "__main__":
    asyncio.run(main())
