// Builds the console into the Python package (src/legato/ui/static), which `legato serve` serves
// at `/`. The output must be byte-for-byte reproducible: CI rebuilds it and compares.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "../src/legato/ui/static",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1000,
    rolldownOptions: {
      onwarn(warning, warn) {
        // React Flow marks itself "use client" for server-component bundlers; meaningless here.
        if (warning.code === "MODULE_LEVEL_DIRECTIVE") return;
        warn(warning);
      },
    },
  },
  server: {
    // `npm run dev` next to a `legato serve` on :8000 proxies the APIs to it.
    proxy: { "/api": "http://127.0.0.1:8000", "/v1": "http://127.0.0.1:8000" },
  },
});
