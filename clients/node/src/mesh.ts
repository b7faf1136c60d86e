// The mesh's gRPC port from Node: mutual TLS with the caller's client
// certificate, a deadline on every call, and UNAVAILABLE before the first
// message retried with backoff (the mesh answers UNAVAILABLE only when it
// did nothing, and no token has reached the caller yet).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { randomUUID } from "node:crypto";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";
import { FinishReason, Role } from "./gen/tilores_x/v1/common_pb.js";
import { RouterService } from "./gen/tilores_x/v1/router_pb.js";

export type Router = Client<typeof RouterService>;

/** A client of RouterService at `address` (host:port), with the
 * certificate folder a `kubernetes.io/tls` Secret mounts: tls.crt, tls.key,
 * ca.crt. `close()` ends its connection, so a command can exit. */
export function routerClient(address: string, tlsDir: string): { router: Router; close: () => void } {
  const baseUrl = `https://${address}`;
  const sessions = new Http2SessionManager(
    baseUrl,
    // Pings find a silent connection (a vanished host) in seconds, not minutes.
    { pingIntervalMs: 10_000, pingTimeoutMs: 5_000 },
    {
      ca: readFileSync(join(tlsDir, "ca.crt")),
      cert: readFileSync(join(tlsDir, "tls.crt")),
      key: readFileSync(join(tlsDir, "tls.key")),
    },
  );
  const transport = createGrpcTransport({ baseUrl, sessionManager: sessions });
  return { router: createClient(RouterService, transport), close: () => sessions.abort() };
}

export interface Answer {
  text: string;
  completionId: string;
  model: string;
  finishReason: string;
}

/** Streams the answer to `question`: each piece of text goes to `onDelta`
 * as it arrives; the whole answer is returned at the end. */
export async function chat(
  router: Router,
  question: string,
  onDelta: (text: string) => void,
  { model = "offline", deadlineMs = 120_000, attempts = 4 } = {},
): Promise<Answer> {
  const completionId = `chatcmpl-${randomUUID().replaceAll("-", "").slice(0, 24)}`;
  const endsAt = Date.now() + deadlineMs;
  for (let attempt = 1; ; attempt++) {
    let answered = false;
    let finish: Answer | undefined;
    const parts: string[] = [];
    try {
      const stream = router.chat(
        { model, completionId, messages: [{ role: Role.USER, content: question }] },
        { timeoutMs: Math.max(endsAt - Date.now(), 1) },
      );
      for await (const message of stream) {
        answered = true;
        const event = message.event;
        if (event.case === "delta") {
          parts.push(event.value);
          onDelta(event.value);
        } else if (event.case === "error") {
          // A failure after the answer began: its code is a gRPC status name.
          throw new ConnectError(event.value.message, codeNamed(event.value.code));
        } else if (event.case === "finish") {
          const finishReason = FinishReason[event.value.reason].toLowerCase();
          finish = { text: parts.join(""), completionId, model: event.value.model, finishReason };
        }
      }
      if (finish) return finish; // read to the end: the token counts follow the finish
      throw new ConnectError("the answer stream ended before the answer did", Code.Unavailable);
    } catch (error) {
      const failure = ConnectError.from(error);
      const wait = Math.random() * Math.min(2_000, 200 * 2 ** (attempt - 1));
      if (failure.code === Code.Unavailable && !answered && attempt < attempts && Date.now() + wait < endsAt) {
        await sleep(wait);
        continue;
      }
      throw failure;
    }
  }
}

/** Connect's code for a gRPC status name (`INVALID_ARGUMENT` -> Code.InvalidArgument). */
export function codeNamed(name: string): Code {
  for (const [key, value] of Object.entries(Code)) {
    if (typeof value === "number" && key.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() === name) {
      return value;
    }
  }
  return Code.Unknown;
}
