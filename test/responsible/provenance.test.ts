import { describe, expect, it } from "vitest";
import { createHash, KeyObject, webcrypto } from "node:crypto";
import { mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import * as x509 from "@peculiar/x509";
import { PNG } from "@trustnxt/c2pa-ts/asset";
import { SuperBox } from "@trustnxt/c2pa-ts/jumbf";
import { ManifestStore } from "@trustnxt/c2pa-ts/manifest";
import sharp from "sharp";
import { InputError } from "../../src/errors.js";
import { encodePng } from "../../src/image/codec.js";
import { crc32, writePngText } from "../../src/image/png-text.js";
import {
  ingredientMatches,
  loadSigner,
  localSigner,
  resolveSigner,
  signImage,
  TRAINED_ALGORITHMIC_MEDIA,
  verifyImage,
  type ProvenanceInfo,
} from "../../src/responsible/provenance/index.js";

const crypto = webcrypto as unknown as Crypto;
const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), `diffuse-${prefix}-`));
const INFO: ProvenanceInfo = {
  model: "sd15-tiny",
  sampler: "Euler a",
  prompt: "a red fox in the snow",
  seed: 42,
  steps: 20,
  cfgScale: 7,
};

/** A small PNG with varied pixels, so a changed byte in its data is a changed pixel. */
async function samplePng(width = 48, height = 32): Promise<Buffer> {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 7)) & 0xff;
  return encodePng({ width, height, data });
}

interface Chunk {
  type: string;
  start: number;
  length: number;
}

function chunksOf(png: Buffer): Chunk[] {
  const out: Chunk[] = [];
  for (let pos = 8; pos < png.length; ) {
    const length = png.readUInt32BE(pos);
    out.push({ type: png.toString("latin1", pos + 4, pos + 8), start: pos, length });
    pos += 12 + length;
  }
  return out;
}

/** Applies `edit` to the data of the first chunk of `type` and fixes its CRC, as a careful forger would. */
function editChunk(png: Buffer, type: string, edit: (data: Buffer) => void): Buffer {
  const out = Buffer.from(png);
  const c = chunksOf(out).find((k) => k.type === type);
  if (!c) throw new Error(`no ${type} chunk`);
  edit(out.subarray(c.start + 8, c.start + 8 + c.length));
  out.writeUInt32BE(crc32(out.subarray(c.start + 4, c.start + 8 + c.length)), c.start + 8 + c.length);
  return out;
}

const EC_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

/** A CA and a signing certificate it issued, written as PEM files the way a user would have them. */
async function userCredentials(options: { eku?: boolean; selfSignedLeaf?: boolean } = {}) {
  const dir = tmp("c2pa-user");
  const rootKeys = (await crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as CryptoKeyPair;
  const root = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: "CN=Test Root CA, O=Example Newsroom",
      keys: rootKeys,
      signingAlgorithm: EC_P256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(rootKeys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  const keys = (await crypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as CryptoKeyPair;
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
  ];
  if (options.eku !== false) extensions.push(new x509.ExtendedKeyUsageExtension(["1.3.6.1.5.5.7.3.36"]));
  const leaf = options.selfSignedLeaf
    ? await x509.X509CertificateGenerator.createSelfSigned(
        { name: "CN=Jo Photographer", keys, signingAlgorithm: EC_P256, extensions },
        crypto,
      )
    : await x509.X509CertificateGenerator.create(
        {
          subject: "CN=Jo Photographer, O=Example Newsroom",
          issuer: root.subject,
          publicKey: keys.publicKey,
          signingKey: rootKeys.privateKey,
          signingAlgorithm: EC_P256,
          extensions: [...extensions, await x509.AuthorityKeyIdentifierExtension.create(root, false, crypto)],
        },
        crypto,
      );
  // SEC1 ("BEGIN EC PRIVATE KEY"), as openssl ecparam writes it, to check that form is accepted too.
  const keyPem = KeyObject.from(keys.privateKey).export({ type: "sec1", format: "pem" }) as string;
  const keyPath = join(dir, "signer.key");
  const certPath = join(dir, "signer.pem");
  writeFileSync(keyPath, keyPem);
  writeFileSync(certPath, leaf.toString("pem") + "\n");
  return { keyPath, certPath, rootPem: root.toString("pem"), dir };
}

describe("C2PA provenance of PNG outputs", () => {
  it("records a seed exactly: a plain integer while a number holds it, an unsigned 64-bit integer up to 2^64-1", async () => {
    const signer = await localSigner(join(tmp("c2pa-seed"), "c2pa"));
    const seedOf = async (seed: bigint) =>
      (
        (await verifyImage(await signImage(await samplePng(), { ...INFO, seed }, signer))).actions[0]!.parameters[
          "org.diffuse.generation"
        ] as { seed: unknown }
      ).seed;
    expect(await seedOf(42n)).toBe(42);
    expect(await seedOf(2n ** 64n - 1n)).toBe(18446744073709551615n);
  });

  it("signs with a local self-signed identity created on first use, and reads back c2pa.created as trainedAlgorithmicMedia", async () => {
    const dir = join(tmp("c2pa-local"), "diffuse", "c2pa");
    const png = await samplePng();
    const signed = await signImage(png, INFO, await localSigner(dir));
    expect(statSync(join(dir, "signer.key")).mode & 0o777).toBe(0o600);

    const report = await verifyImage(signed);
    expect(report.failures).toEqual([]);
    expect(report.valid).toBe(true);
    expect(report.signatureValid).toBe(true);
    expect(report.hashBinding).toBe("match");
    expect(report.aiGenerated).toBe(true);
    expect(report.assertions).toEqual(["c2pa.actions.v2", "c2pa.hash.data"]);
    expect(report.actions).toHaveLength(1);
    const created = report.actions[0]!;
    expect(created.action).toBe("c2pa.created");
    expect(created.digitalSourceType).toBe(TRAINED_ALGORITHMIC_MEDIA);
    expect(created.digitalSourceType).toBe("http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia");
    expect(created.softwareAgent).toMatch(/^diffuse\b/);
    expect(created.parameters["org.diffuse.generation"]).toEqual({
      model: "sd15-tiny",
      sampler: "Euler a",
      prompt: "a red fox in the snow",
      seed: 42,
      steps: 20,
      cfgScale: 7,
    });
    expect(report.claimGenerator?.name).toBe("diffuse");
    expect(report.claimGenerator?.["org.diffuse.signing"]).toMatch(/^self-signed/);
    expect(report.signer).toMatchObject({
      trust: "self-signed",
      selfSigned: true,
      declaredSelfSigned: true,
      algorithm: "ES256",
    });
    expect(report.signer?.subject).toContain("CN=diffuse local signer");

    // The manifest is an ancillary chunk before the image data: the pixels are untouched.
    const types = chunksOf(signed).map((c) => c.type);
    expect(types.filter((t) => t === "caBX")).toHaveLength(1);
    expect(types.indexOf("caBX")).toBeLessThan(types.indexOf("IDAT"));
    expect(types.filter((t) => t !== "caBX")).toEqual(chunksOf(png).map((c) => c.type));
    expect(await sharp(signed).raw().toBuffer()).toEqual(await sharp(png).raw().toBuffer());
  });

  it("writes the ES256 signature as COSE's fixed-length r||s (RFC 9053), not ASN.1 DER", async () => {
    const signed = await signImage(await samplePng(), INFO, await localSigner(join(tmp("c2pa-cose"), "c2pa")));
    const store = ManifestStore.read(SuperBox.fromBuffer(new Uint8Array(new PNG(signed).getManifestJUMBF()!)));
    const signature = store.getActiveManifest()!.signature!.signatureData;
    expect(signature.algorithm?.coseIdentifier).toBe(-7);
    expect(signature.signature).toHaveLength(64);
  });

  it("reuses the local identity on later runs instead of making a new one", async () => {
    const dir = join(tmp("c2pa-reuse"), "c2pa");
    const first = await localSigner(dir);
    const second = await localSigner(dir);
    expect(Buffer.from(second.cose.certificate.rawData)).toEqual(Buffer.from(first.cose.certificate.rawData));
  });

  it("ends up with one local identity when two signers are created at the same time", async () => {
    const dir = join(tmp("c2pa-race"), "c2pa");
    const [a, b] = await Promise.all([localSigner(dir), localSigner(dir)]);
    expect(Buffer.from(a.cose.certificate.rawData)).toEqual(Buffer.from(b.cose.certificate.rawData));
    expect(readdirSync(dirname(dir))).toEqual(["c2pa"]); // no staging folder left behind
  });

  it("reports a hash mismatch when one byte of the image data changes after signing", async () => {
    const signed = await signImage(await samplePng(), INFO, await localSigner(join(tmp("c2pa-tamper"), "c2pa")));
    const tampered = editChunk(signed, "IDAT", (data) => {
      data[data.length >> 1] ^= 0x01;
    });
    const report = await verifyImage(tampered);
    expect(report.manifestFound).toBe(true);
    expect(report.valid).toBe(false);
    expect(report.hashBinding).toBe("mismatch");
    expect(report.signatureValid).toBe(true); // the manifest itself is intact; the image under it is not
    expect(report.failures.map((f) => f.code)).toEqual(["assertion.dataHash.mismatch"]);
    expect(report.failures[0]!.message).toBe("hash mismatch: the image was modified after signing");
  });

  it("reports a hash mismatch when metadata is added after signing, so signing must come last", async () => {
    const signed = await signImage(await samplePng(), INFO, await localSigner(join(tmp("c2pa-late"), "c2pa")));
    const report = await verifyImage(writePngText(signed, { parameters: "added later" }));
    expect(report.valid).toBe(false);
    expect(report.hashBinding).toBe("mismatch");
  });

  it("reports an altered assertion when the recorded prompt is edited inside the manifest", async () => {
    const signed = await signImage(await samplePng(), INFO, await localSigner(join(tmp("c2pa-forge"), "c2pa")));
    const forged = editChunk(signed, "caBX", (data) => {
      const at = data.indexOf("a red fox");
      expect(at).toBeGreaterThan(0);
      data.write("a red cat", at, "latin1");
    });
    const report = await verifyImage(forged);
    expect(report.valid).toBe(false);
    expect(report.failures.map((f) => f.code)).toContain("assertion.hashedURI.mismatch");
    expect(report.failures.find((f) => f.code === "assertion.hashedURI.mismatch")!.message).toMatch(
      /altered after signing.*c2pa\.actions\.v2/,
    );
    expect(report.hashBinding).toBe("match"); // the pixels were not touched
  });

  it("records a sketch as an inputTo ingredient with its SHA-256, used by the c2pa.created action", async () => {
    const sketch = await samplePng(16, 16);
    const info: ProvenanceInfo = { ...INFO, ingredient: sketch, ingredientTitle: "sketch.png", denoisingStrength: 0.7 };
    const signed = await signImage(await samplePng(), info, await localSigner(join(tmp("c2pa-sketch"), "c2pa")));
    const report = await verifyImage(signed);
    expect(report.valid).toBe(true);
    const sha256 = createHash("sha256").update(sketch).digest("hex");
    expect(report.ingredients).toEqual([
      {
        label: "c2pa.ingredient.v3",
        relationship: "inputTo",
        title: "sketch.png",
        format: "image/png",
        description: expect.any(String),
        sha256,
        dataUri: `ni:///sha-256;${Buffer.from(sha256, "hex").toString("base64url")}`,
      },
    ]);
    expect(ingredientMatches(sketch, report.ingredients[0]!.sha256!)).toBe(true);
    expect(ingredientMatches(await samplePng(16, 17), report.ingredients[0]!.sha256!)).toBe(false);
    const created = report.actions[0]!;
    expect(created).toMatchObject({
      action: "c2pa.created",
      digitalSourceType: TRAINED_ALGORITHMIC_MEDIA,
      ingredients: ["self#jumbf=c2pa.assertions/c2pa.ingredient.v3"],
    });
    expect(created.parameters["org.diffuse.generation"]).toMatchObject({ denoisingStrength: 0.7 });
  });

  it("signs with a user-provided ES256 key and certificate chain, trusted only when its root is given", async () => {
    const user = await userCredentials();
    const signer = await loadSigner(user.keyPath, user.certPath);
    expect(signer.selfSigned).toBe(false);
    const signed = await signImage(await samplePng(), INFO, signer);

    const report = await verifyImage(signed);
    expect(report.valid).toBe(true);
    expect(report.signer).toMatchObject({
      subject: "CN=Jo Photographer, O=Example Newsroom",
      trust: "unknown-issuer",
      selfSigned: false,
      declaredSelfSigned: false,
    });
    expect(report.claimGenerator?.["org.diffuse.signing"]).not.toMatch(/self-signed/);
    const trusted = await verifyImage(signed, { trustAnchors: user.rootPem });
    expect(trusted.signer?.trust).toBe("trusted");

    // The same paths through the configuration that the CLI and server use.
    const configured = await resolveSigner({ keyPath: user.keyPath, certPath: user.certPath });
    expect(configured.subject).toBe(signer.subject);
  });

  it("refuses user keys that would produce credentials every reader rejects, saying why", async () => {
    const user = await userCredentials();
    const other = await userCredentials();
    await expect(loadSigner(other.keyPath, user.certPath)).rejects.toThrow(/does not belong to the first certificate/);
    const noEku = await userCredentials({ eku: false });
    await expect(loadSigner(noEku.keyPath, noEku.certPath)).rejects.toThrow(/extendedKeyUsage/);
    const selfSigned = await userCredentials({ selfSignedLeaf: true });
    await expect(loadSigner(selfSigned.keyPath, selfSigned.certPath)).rejects.toThrow(/self-signed/);
    await expect(resolveSigner({ keyPath: user.keyPath })).rejects.toThrow(/without its certificate chain/);
    await expect(loadSigner(join(user.dir, "missing.key"), user.certPath)).rejects.toBeInstanceOf(InputError);
  });

  it("finds no manifest in an unsigned PNG and refuses files that are not PNG", async () => {
    const report = await verifyImage(await samplePng());
    expect(report.manifestFound).toBe(false);
    expect(report.valid).toBe(false);
    await expect(verifyImage(Buffer.from("GIF89a not a png"))).rejects.toBeInstanceOf(InputError);
  });

  it("refuses to sign a PNG that already carries a manifest", async () => {
    const signer = await localSigner(join(tmp("c2pa-twice"), "c2pa"));
    const signed = await signImage(await samplePng(), INFO, signer);
    await expect(signImage(signed, INFO, signer)).rejects.toThrow(/already carries a C2PA manifest/);
  });
});
