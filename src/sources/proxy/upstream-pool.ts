/**
 * Keep-alive connections to the upstream, reused last-in first-out (the warmest socket first). Each socket's
 * listeners are attached once and dispatch to whichever exchange owns it now, so reusing a connection costs
 * no listener churn; a socket that speaks while idle, errs or closes leaves the pool.
 */
import net, { type Socket } from 'node:net';
import tls from 'node:tls';

export interface UpstreamOwner {
  onUpstreamData(chunk: Buffer): void;
  onUpstreamEnd(err: NodeJS.ErrnoException | null): void;
  onUpstreamDrain(): void;
}

export class UpstreamConn {
  owner: UpstreamOwner | null = null;
  /** Served a request before (a keep-alive socket the upstream may have closed meanwhile). */
  reused = false;
  ended = false;
  private error: NodeJS.ErrnoException | null = null;

  constructor(readonly socket: Socket, private readonly pool: UpstreamPool) {
    socket.on('data', (chunk: Buffer) => {
      if (this.owner) this.owner.onUpstreamData(chunk);
      else socket.destroy(); // bytes nobody asked for: the connection is out of step
    });
    socket.on('drain', () => this.owner?.onUpstreamDrain());
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error ??= err;
    });
    socket.on('end', () => {
      // The upstream finished sending: a close-delimited body ends here; an idle socket is useless now.
      if (!this.owner) socket.destroy();
    });
    socket.on('close', () => {
      this.ended = true;
      this.pool.forget(this);
      const owner = this.owner;
      this.owner = null;
      owner?.onUpstreamEnd(this.error);
    });
  }

  /** When it went back to the pool (the pool's sweep closes it after the idle timeout). */
  idleSince = 0;

  get usable(): boolean {
    return !this.ended && !this.socket.destroyed && this.socket.readyState === 'open';
  }

  write(data: Buffer): boolean {
    return this.socket.write(data);
  }

  destroy(): void {
    this.owner = null;
    this.socket.destroy();
  }
}

export interface PoolOptions {
  host: string;
  port: number;
  tls: boolean;
  servername?: string;
  /** Extra trusted CAs (PEM), added to Node's roots. */
  ca?: string | Buffer;
  maxIdle?: number;
  idleTimeoutMs?: number;
}

export class UpstreamPool {
  private readonly idle: UpstreamConn[] = [];
  private readonly all = new Set<UpstreamConn>();
  private tlsSession: Buffer | undefined;
  private readonly maxIdle: number;
  private readonly idleTimeoutMs: number;
  private readonly ca: Array<string | Buffer> | undefined;

  constructor(private readonly opts: PoolOptions) {
    this.maxIdle = opts.maxIdle ?? 256;
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 30_000;
    this.ca = opts.ca ? [...tls.rootCertificates, opts.ca] : undefined;
  }

  /** An idle connection (most recently used first), or a new one; `fresh` skips the idle ones. */
  acquire(owner: UpstreamOwner, fresh = false): UpstreamConn {
    let conn: UpstreamConn | undefined;
    while (!fresh && (conn = this.idle.pop())) {
      if (conn.usable) {
        conn.owner = owner;
        conn.reused = true;
        conn.socket.resume();
        return conn;
      }
      conn.destroy();
    }
    conn = new UpstreamConn(this.connect(), this);
    this.all.add(conn);
    conn.owner = owner;
    return conn;
  }

  /** Back to the pool once a response has ended cleanly and the request was sent whole. */
  release(conn: UpstreamConn): void {
    conn.owner = null;
    if (!conn.usable || this.idle.length >= this.maxIdle) {
      conn.destroy();
      return;
    }
    conn.idleSince = Date.now();
    this.idle.push(conn);
  }

  /** Close connections idle longer than the idle timeout (the oldest are at the start of the list). */
  sweep(now: number): void {
    while (this.idle.length && now - this.idle[0].idleSince > this.idleTimeoutMs) this.idle.shift()!.destroy();
  }

  forget(conn: UpstreamConn): void {
    this.all.delete(conn);
    const i = this.idle.indexOf(conn);
    if (i !== -1) this.idle.splice(i, 1);
  }

  destroy(): void {
    for (const c of [...this.all]) c.destroy();
    this.idle.length = 0;
  }

  private connect(): Socket {
    const { host, port } = this.opts;
    if (!this.opts.tls) return net.connect({ host, port, noDelay: true });
    const socket = tls.connect({ host, port, servername: this.opts.servername, ALPNProtocols: ['http/1.1'], session: this.tlsSession, ca: this.ca });
    socket.setNoDelay(true);
    socket.on('session', (s: Buffer) => {
      this.tlsSession = s;
    });
    return socket;
  }
}
