// Builds the web app into ../dist, which Flowmill serves at / and ships in the wheel.
// The build must be deterministic: CI rebuilds it and fails if ../dist changes.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

export default defineConfig({
  plugins: [react()],
  base: "/",
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: true,
    chunkSizeWarningLimit: 600,
  },
  server: {
    // `npm run dev` against a running `flowmill serve`
    proxy: { "/api": "http://127.0.0.1:3000", "/openapi.json": "http://127.0.0.1:3000" },
  },
  test: { environment: "node", include: ["src/**/*.test.ts"] },
} as never);
