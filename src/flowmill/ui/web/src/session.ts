// The credential (API key or JWT) lives in sessionStorage: gone when the tab closes,
// never in a URL, a cookie or localStorage.

const KEY = "flowmill.credential";

export function credential(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function saveCredential(value: string): void {
  sessionStorage.setItem(KEY, value);
}

export function clearCredential(): void {
  sessionStorage.removeItem(KEY);
}

type Listener = () => void;
const listeners = new Set<Listener>();

/** Called when the API refused the credential (revoked, expired): back to sign-in. */
export function onSignedOut(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function signOut(): void {
  clearCredential();
  listeners.forEach((fn) => fn());
}
