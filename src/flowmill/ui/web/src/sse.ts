// Server-Sent Events over fetch, so the credential goes in the Authorization header
// (EventSource cannot send headers, and the key must never be in a URL). Reconnects
// with Last-Event-ID after a broken connection, as the API documents.
import { credential } from "./session";
import type { StreamEvent } from "./types";

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

/** Feed text chunks; get back the complete messages (a pure parser, tested alone). */
export class SseParser {
  private buffer = "";
  private id: string | null = null;
  private event = "";
  private data: string[] = [];

  push(chunk: string): SseMessage[] {
    this.buffer += chunk;
    const out: SseMessage[] = [];
    for (;;) {
      const nl = this.buffer.search(/\r\n|\r|\n/);
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl);
      const skip = this.buffer.startsWith("\r\n", nl) ? 2 : 1;
      this.buffer = this.buffer.slice(nl + skip);
      if (line === "") {
        if (this.data.length) out.push({ id: this.id, event: this.event || "message", data: this.data.join("\n") });
        this.event = "";
        this.data = [];
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") this.data.push(value);
      else if (field === "event") this.event = value;
      else if (field === "id") this.id = value;
    }
    return out;
  }
}

const FINAL = new Set(["execution.completed", "execution.failed", "execution.cancelled"]);

/**
 * Follow an execution's events until it ends or `signal` aborts. Returns when the
 * stream ended with a final event; reconnects (after a pause) when it broke.
 */
export async function followExecution(
  executionId: string,
  onEvent: (e: StreamEvent) => void,
  signal: AbortSignal,
  onState: (state: "live" | "reconnecting" | "ended") => void = () => {},
): Promise<void> {
  let last: string | null = null;
  let pause = 500;
  while (!signal.aborted) {
    try {
      const headers: Record<string, string> = { Accept: "text/event-stream" };
      const token = credential();
      if (token) headers.Authorization = `Bearer ${token}`;
      if (last) headers["Last-Event-ID"] = last;
      const res = await fetch(`/api/executions/${executionId}/events`, { headers, signal });
      if (!res.ok || !res.body) throw new Error(`stream answered ${res.status}`);
      onState("live");
      pause = 500;
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const m of parser.push(value)) {
          if (m.id) last = m.id;
          let data: StreamEvent;
          try {
            data = JSON.parse(m.data) as StreamEvent;
          } catch {
            continue;
          }
          onEvent(data);
          if (FINAL.has(m.event)) {
            onState("ended");
            return;
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      void e;
    }
    onState("reconnecting");
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 5000);
  }
}
