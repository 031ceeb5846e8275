// Helpers for the MCP tests: a client connected in-process to createMcpServer, and readers of
// tool results (text, structured content, errors).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { after } from 'node:test';
import { createMcpServer, type McpServerOptions } from '../../src/mcp/mcp-server.ts';

export async function inProcessClient(options: McpServerOptions): Promise<Client> {
  const server = createMcpServer(options);
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'corral-test', version: '0.0.0' });
  await Promise.all([server.connect(a), client.connect(b)]);
  // As real clients do: the listing also arms the client's checks of structured output.
  await client.listTools();
  after(async () => {
    await client.close();
    await server.close();
  });
  return client;
}

/** Calls a tool; the result with its first text and structured content. */
export async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<{ isError: boolean; text: string; data: any }> {
  const r = (await client.callTool({ name, arguments: args })) as CallToolResult;
  const first = r.content[0];
  return { isError: r.isError === true, text: first?.type === 'text' ? first.text : '', data: r.structuredContent };
}
