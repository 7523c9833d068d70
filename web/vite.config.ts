import { defineConfig } from "vite";

// The API serves the built client at "/"; in development, `vite` proxies the API.
export default defineConfig({
  build: { outDir: "dist", sourcemap: true },
  server: {
    proxy: {
      "/v1": "http://127.0.0.1:8000",
    },
  },
  test: { environment: "node" },
} as Parameters<typeof defineConfig>[0]);
