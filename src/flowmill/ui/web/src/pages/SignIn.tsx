import { useState } from "react";
import { api, ApiError } from "../api";
import { saveCredential } from "../session";
import type { Tenant } from "../types";
import { Logo } from "../ui";

export function SignIn({ onSignedIn, notice }: { onSignedIn: (t: Tenant) => void; notice: string | null }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: React.FormEvent) {
    e.preventDefault();
    const token = value.trim();
    if (!token) {
      setError("Paste an API key (it starts with fm_) or a JWT.");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const tenant = await api.tenant(token);
      saveCredential(token);
      onSignedIn(tenant);
    } catch (err) {
      const e2 = err as ApiError;
      setError(
        e2.status === 401
          ? token.startsWith("fm_")
            ? "This API key was refused: it is unknown, revoked, or not copied whole. Check it and try again."
            : "This token was refused: it is not a valid API key, or a JWT this server accepts (signature, issuer, audience, expiry)."
          : e2.message,
      );
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="signin">
      <form onSubmit={submit} className="card signin-card" aria-labelledby="signin-title">
        <h1 id="signin-title">
          <Logo size={28} /> Sign in to Flowmill
        </h1>
        {notice && <div className="notice" role="status">{notice}</div>}
        <label htmlFor="credential">API key or JWT</label>
        <input
          id="credential"
          name="credential"
          type="password"
          autoComplete="off"
          spellCheck={false}
          autoFocus
          value={value}
          onChange={(e) => setValue(e.target.value)}
          placeholder="fm_…"
          aria-invalid={Boolean(error)}
          aria-describedby={error ? "signin-error" : "signin-help"}
        />
        {error && (
          <div id="signin-error" className="field-error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Checking…" : "Sign in"}
        </button>
        <p id="signin-help" className="muted">
          <code>flowmill serve</code> prints a key the first time it starts; make more with{" "}
          <code>flowmill keys create --tenant …</code>. The key is kept only for this browser tab's
          session and is sent only in the <code>Authorization</code> header.
        </p>
      </form>
    </div>
  );
}
