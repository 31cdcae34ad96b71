// Self-signed certificates for herald's native TLS, generated per run with the openssl CLI
// (Debian package openssl; scripts/install-deps.sh installs it) into a temporary directory: no
// private key is ever committed. Missing openssl is a failure, never a skip.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A fresh P-256 certificate for localhost and 127.0.0.1, valid for a day.
 * Returns { cert, key } (file paths, for herald's [tls]), `ca` (the certificate's PEM, for
 * clients to trust) and `remove()`.
 */
export function selfSignedCert() {
  const dir = mkdtempSync(join(tmpdir(), "herald-tls-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  try {
    execFileSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const why = err.code === "ENOENT" ? "the openssl CLI is not installed (apt-get install openssl)" : err.stderr?.toString() || err.message;
    throw new Error(`could not generate a self-signed certificate: ${why}`);
  }
  return { cert, key, ca: readFileSync(cert, "utf8"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
