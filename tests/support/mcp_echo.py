#!/usr/bin/env python3
"""A small MCP server for the tests: stdlib only, JSON-RPC 2.0.

stdio mode (default): one JSON message per line on stdin/stdout.
HTTP mode (--http): Streamable HTTP on 127.0.0.1 (a free port, printed as "PORT <n>"),
answering POST /mcp with application/json; GET answers 405 (no server-initiated stream).

Tools: echo {text}, add {a, b} (structured result), pid {} (this process's id), crash {}
(exits without answering), fail {} (an isError result).
"""

import json
import os
import sys

TOOLS = [
    {
        "name": "echo",
        "description": "Echo the text back",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string"}},
            "required": ["text"],
        },
    },
    {
        "name": "add",
        "description": "Add two numbers",
        "inputSchema": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
    {"name": "pid", "description": "The server's process id", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "crash", "description": "Exit at once", "inputSchema": {"type": "object", "properties": {}}},
    {"name": "fail", "description": "Report an error", "inputSchema": {"type": "object", "properties": {}}},
]


def text(value):
    return {"content": [{"type": "text", "text": value}], "isError": False}


def call_tool(name, args):
    if name == "echo":
        return text(args["text"])
    if name == "add":
        total = args["a"] + args["b"]
        result = text(str(total))
        result["structuredContent"] = {"sum": total}
        return result
    if name == "pid":
        return text(str(os.getpid()))
    if name == "crash":
        sys.stdout.flush()
        os._exit(3)
    if name == "fail":
        return {"content": [{"type": "text", "text": "the tool failed on purpose"}], "isError": True}
    return None


def handle(message):
    """The response to one message, or None for notifications."""
    method = message.get("method")
    msg_id = message.get("id")
    if msg_id is None:
        return None
    params = message.get("params") or {}
    if method == "initialize":
        result = {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "mcp-echo", "version": "1.0.0"},
        }
    elif method == "ping":
        result = {}
    elif method == "tools/list":
        result = {"tools": TOOLS}
    elif method == "tools/call":
        result = call_tool(params.get("name"), params.get("arguments") or {})
        if result is None:
            return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32602, "message": "unknown tool"}}
    else:
        return {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": "method not found"}}
    return {"jsonrpc": "2.0", "id": msg_id, "result": result}


def serve_stdio():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        response = handle(json.loads(line))
        if response is not None:
            sys.stdout.write(json.dumps(response) + "\n")
            sys.stdout.flush()


def serve_http():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            message = json.loads(self.rfile.read(length) or b"{}")
            response = handle(message)
            if response is None:
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            body = json.dumps(response).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            if message.get("method") == "initialize":
                self.send_header("mcp-session-id", "test-session")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.send_response(405)
            self.send_header("content-length", "0")
            self.end_headers()

        def do_DELETE(self):
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    sys.stdout.write("PORT %d\n" % server.server_address[1])
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    if "--http" in sys.argv:
        serve_http()
    else:
        serve_stdio()
