import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 to a loopback target that can be told to stall: from then on it keeps every connection
 * (old and new) open but passes no byte either way, so a client's call neither fails nor answers — a server that
 * hangs mid-request.
 */
export async function startStallProxy(target: { host: string; port: number }) {
  if (!['127.0.0.1', 'localhost', '::1'].includes(target.host)) throw new Error('the stall proxy forwards to loopback only');
  let stalled = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    if (stalled) {
      client.on('data', () => undefined);
      return;
    }
    const upstream = net.connect(target.port, target.host);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.on('data', (chunk) => {
      if (!stalled) upstream.write(chunk);
    });
    upstream.on('data', (chunk) => {
      if (!stalled) client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    stall(): void {
      stalled = true;
    },
    async stop(): Promise<void> {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
