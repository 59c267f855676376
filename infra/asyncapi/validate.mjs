// Validates an AsyncAPI document with the reference parser (@asyncapi/parser), its $refs to
// files resolved relative to the document and its Avro payloads checked by the Avro schema parser.
//
//   node infra/asyncapi/validate.mjs catalog.yaml
//
// Prints one JSON object: {"valid": bool, "version": "3.0.0", "channels": [...addresses],
// "diagnostics": [{"severity", "code", "message", "path"}]}. Exit codes: 0 valid, 1 invalid
// (an error-severity diagnostic), 2 bad usage or unreadable file.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity, fromFile } from "@asyncapi/parser";
import { AvroSchemaParser } from "@asyncapi/avro-schema-parser";

const path = process.argv[2];
if (!path) {
  console.error("usage: node validate.mjs <asyncapi document>");
  process.exit(2);
}
try {
  await readFile(path, "utf8");
} catch (error) {
  console.error(`cannot read ${path}: ${error.code}`);
  process.exit(2);
}
// The Avro parser makes the Avro payloads (referenced .avsc files) part of the validation.
const parser = new Parser({ schemaParsers: [AvroSchemaParser()] });
const { document, diagnostics } = await fromFile(parser, path).parse();
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
const result = {
  valid: document !== undefined && errors.length === 0,
  version: document?.version() ?? null,
  channels: document ? document.channels().all().map((c) => c.address()) : [],
  diagnostics: diagnostics.map((d) => ({
    severity: d.severity,
    code: String(d.code),
    message: d.message,
    path: d.path.join("."),
  })),
};
console.log(JSON.stringify(result));
process.exit(result.valid ? 0 : 1);
