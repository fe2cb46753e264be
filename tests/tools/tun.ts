/**
 * A Linux TUN device through Deno FFI: open /dev/net/tun, attach it to a named layer-3 device
 * (IFF_TUN | IFF_NO_PI, so every read and write is one bare IP packet), read and write packets.
 * The device is created in the network namespace of the calling process.
 */
import {
  cString,
  errno,
  IFF_NO_PI,
  IFF_TUN,
  IFNAMSIZ,
  IFREQ_SIZE,
  libc,
  O_RDWR,
  strerror,
  TUNSETIFF,
} from "./_libc.ts";

/** The largest packet a read returns (the device MTU is at most this). */
export const MAX_PACKET = 65535;

/** An open TUN device. */
export class TunDevice {
  #fd: number;
  #closed = false;

  private constructor(fd: number, readonly name: string) {
    this.#fd = fd;
  }

  /**
   * Opens /dev/net/tun and attaches it to device `name` (created if missing; an existing
   * persistent device made with `ip tuntap add NAME mode tun` is reused).
   */
  static open(name: string): TunDevice {
    const nameBytes = new TextEncoder().encode(name);
    if (nameBytes.length === 0 || nameBytes.length >= IFNAMSIZ) {
      throw new RangeError(`Cannot open TUN device: name must be 1-15 bytes: received "${name}"`);
    }
    const c = libc();
    const fd = c.open(cString("/dev/net/tun"), O_RDWR, 0);
    if (fd < 0) {
      throw new Error(
        `Cannot open /dev/net/tun: ${strerror(errno())}; the link emulator needs the TUN driver ` +
          "(a /dev/net/tun character device, major 10 minor 200) and CAP_NET_ADMIN",
      );
    }
    const ifr = new Uint8Array(IFREQ_SIZE);
    ifr.set(nameBytes, 0);
    new DataView(ifr.buffer).setUint16(IFNAMSIZ, IFF_TUN | IFF_NO_PI, true);
    if (c.ioctl(fd, BigInt(TUNSETIFF), ifr) < 0) {
      const err = strerror(errno());
      c.close(fd);
      throw new Error(`Cannot attach TUN device ${name}: ioctl(TUNSETIFF): ${err}`);
    }
    return new TunDevice(fd, name);
  }

  /** Reads one packet into `buf` (blocking on a worker thread); resolves with its length. */
  async read(buf: Uint8Array<ArrayBuffer>): Promise<number> {
    if (this.#closed) throw new Error(`Cannot read TUN device ${this.name}: closed`);
    const n = Number(await libc().readAsync(this.#fd, buf, BigInt(buf.length)));
    if (n < 0) throw new Error(`Cannot read TUN device ${this.name}: read failed`);
    return n;
  }

  /** Writes one packet; the kernel then routes it as if it arrived on the device. */
  write(packet: Uint8Array<ArrayBuffer>): void {
    if (this.#closed) throw new Error(`Cannot write TUN device ${this.name}: closed`);
    const n = Number(libc().write(this.#fd, packet, BigInt(packet.length)));
    if (n < 0) throw new Error(`Cannot write TUN device ${this.name}: ${strerror(errno())}`);
  }

  /**
   * Closes the file descriptor. A read still blocked on a worker thread stays blocked, so a
   * process that reads a TUN device should exit (Deno.exit) rather than wait for it.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    libc().close(this.#fd);
  }
}
