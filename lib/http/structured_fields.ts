/**
 * A Structured Field Dictionary parser (RFC 8941 §4.2.2), enough for targeted cache-control
 * fields (RFC 9213 §2.1): members with bare items, inner lists and parameters. Any syntax
 * error makes the whole field invalid.
 *
 * @module
 */

/** A bare item: Integer/Decimal (number), String, Token, Byte Sequence, or Boolean. */
export type BareItem =
  | { type: "integer"; value: number }
  | { type: "decimal"; value: number }
  | { type: "string"; value: string }
  | { type: "token"; value: string }
  | { type: "bytes"; value: string }
  | { type: "boolean"; value: boolean };

/** A dictionary member's value (parameters are parsed and dropped). */
export type MemberValue = BareItem | { type: "inner-list"; items: BareItem[] };

class SyntaxFail extends Error {}

const KEY_FIRST = /[a-z*]/;
const KEY_REST = /[a-z0-9_\-.*]/;
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z:/]/;

class Parser {
  i = 0;
  constructor(readonly s: string) {}

  peek(): string {
    return this.s[this.i] ?? "";
  }
  fail(what: string): never {
    throw new SyntaxFail(`${what} at ${this.i}`);
  }
  skipSp(): void {
    while (this.peek() === " ") this.i++;
  }
  skipOws(): void {
    while (this.peek() === " " || this.peek() === "\t") this.i++;
  }

  key(): string {
    if (!KEY_FIRST.test(this.peek())) this.fail("key");
    const start = this.i++;
    while (this.i < this.s.length && KEY_REST.test(this.peek())) this.i++;
    return this.s.slice(start, this.i);
  }

  bareItem(): BareItem {
    const c = this.peek();
    if (c === "-" || (c >= "0" && c <= "9")) return this.number();
    if (c === '"') return this.string();
    if (c === ":") return this.bytes();
    if (c === "?") {
      const b = this.s[this.i + 1];
      if (b !== "0" && b !== "1") this.fail("boolean");
      this.i += 2;
      return { type: "boolean", value: b === "1" };
    }
    if (/[A-Za-z*]/.test(c)) {
      const start = this.i++;
      while (this.i < this.s.length && TCHAR.test(this.peek())) this.i++;
      return { type: "token", value: this.s.slice(start, this.i) };
    }
    return this.fail("item");
  }

  number(): BareItem {
    const m = /^(-?)([0-9]{1,15})(?:\.([0-9]{1,3}))?/.exec(this.s.slice(this.i));
    if (m === null) return this.fail("number");
    if (m[3] !== undefined && m[2].length > 12) this.fail("decimal");
    const after = this.s[this.i + m[0].length];
    if (after !== undefined && /[0-9.]/.test(after)) this.fail("number");
    this.i += m[0].length;
    const value = Number(m[0]);
    return m[3] === undefined ? { type: "integer", value } : { type: "decimal", value };
  }

  string(): BareItem {
    this.i++;
    let out = "";
    while (this.i < this.s.length) {
      const c = this.s[this.i++];
      if (c === "\\") {
        const n = this.s[this.i++];
        if (n !== '"' && n !== "\\") this.fail("escape");
        out += n;
      } else if (c === '"') return { type: "string", value: out };
      else if (c < " " || c > "~") this.fail("string character");
      else out += c;
    }
    return this.fail("unterminated string");
  }

  bytes(): BareItem {
    const end = this.s.indexOf(":", this.i + 1);
    if (end < 0) this.fail("byte sequence");
    const v = this.s.slice(this.i + 1, end);
    if (!/^[A-Za-z0-9+/=]*$/.test(v)) this.fail("base64");
    this.i = end + 1;
    return { type: "bytes", value: v };
  }

  parameters(): void {
    while (this.peek() === ";") {
      this.i++;
      this.skipSp();
      this.key();
      if (this.peek() === "=") {
        this.i++;
        this.bareItem();
      }
    }
  }

  innerList(): MemberValue {
    this.i++;
    const items: BareItem[] = [];
    while (this.i < this.s.length) {
      this.skipSp();
      if (this.peek() === ")") {
        this.i++;
        this.parameters();
        return { type: "inner-list", items };
      }
      items.push(this.bareItem());
      this.parameters();
      const c = this.peek();
      if (c !== " " && c !== ")") this.fail("inner list");
    }
    return this.fail("unterminated inner list");
  }
}

/**
 * Parses a Dictionary field value into its members (a later duplicate key replaces an
 * earlier one, §4.2.2); null when the value is not a valid Dictionary.
 */
export function parseDictionary(value: string): Map<string, MemberValue> | null {
  const p = new Parser(value.replace(/^ +| +$/g, ""));
  const out = new Map<string, MemberValue>();
  try {
    while (p.i < p.s.length) {
      const key = p.key();
      let v: MemberValue;
      if (p.peek() === "=") {
        p.i++;
        v = p.peek() === "(" ? p.innerList() : p.bareItem();
      } else v = { type: "boolean", value: true };
      p.parameters();
      out.set(key, v);
      p.skipOws();
      if (p.i >= p.s.length) break;
      if (p.peek() !== ",") p.fail("comma");
      p.i++;
      p.skipOws();
      if (p.i >= p.s.length) p.fail("trailing comma");
    }
  } catch (e) {
    if (e instanceof SyntaxFail) return null;
    throw e;
  }
  return out;
}
