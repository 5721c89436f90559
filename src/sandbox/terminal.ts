// Relays the host terminal to the box's PTY master: raw mode on the host,
// window-size changes passed on, settings restored on every exit path.
import tty from 'node:tty';
import { loadAddon } from '../native/addon.js';

export class TerminalRelay {
  private master: tty.ReadStream | undefined;
  private masterFd = -1;
  private restored = false;
  private readonly restoreOnExit = () => this.restore();
  private readonly onResize = () => this.resize();
  private ended: Promise<void> = Promise.resolve();

  attach(fd: number): void {
    const master = new tty.ReadStream(fd);
    this.masterFd = fd;
    this.master = master;
    this.ended = new Promise((resolve) => {
      master.on('error', () => resolve()); // EIO once every slave is closed
      master.on('close', () => resolve());
      master.on('end', () => resolve());
    });
    master.on('data', (d: Buffer) => process.stdout.write(d));
    const stdin = process.stdin;
    if (stdin.isTTY) stdin.setRawMode(true);
    process.on('exit', this.restoreOnExit);
    stdin.on('data', (d: Buffer) => {
      if (!master.destroyed) master.write(d);
    });
    stdin.resume();
    process.stdout.on('resize', this.onResize);
    this.resize();
  }

  private resize(): void {
    if (!this.master || this.master.destroyed) return;
    const out = process.stdout;
    if (out.isTTY && out.rows > 0 && out.columns > 0) loadAddon().setWinsize(this.masterFd, out.rows, out.columns);
  }

  /** Waits for the box's last output (bounded), then gives the terminal back. */
  async finish(): Promise<void> {
    if (this.master) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.ended, new Promise<void>((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
      this.master.destroy();
    }
    this.restore();
  }

  restore(): void {
    if (this.restored) return;
    this.restored = true;
    process.stdout.off('resize', this.onResize);
    process.off('exit', this.restoreOnExit);
    if (this.master) {
      const stdin = process.stdin;
      if (stdin.isTTY) stdin.setRawMode(false);
      stdin.pause();
    }
  }
}
