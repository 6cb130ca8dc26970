#!/usr/bin/env node
// validate_speedscope.js FILE
//
// Checks FILE against the speedscope file-format schema shipped in the speedscope npm package
// (dist/release/file-format-schema.json), plus what the schema cannot say but the speedscope
// importer relies on: valid UTF-8, samples and weights of equal length, frame indices that exist,
// finite non-negative weights, startValue <= endValue, an activeProfileIndex in range.
// Prints one line and exits 0 (valid) or 1 (invalid or unreadable).
'use strict';

const fs = require('fs');
const path = require('path');
const Ajv = require('ajv');

function fail(file, reason) {
  console.log(`INVALID ${file}: ${reason}`);
  process.exit(1);
}

function main() {
  const file = process.argv[2];
  if (!file || process.argv.length > 3) {
    console.log('usage: validate_speedscope.js FILE');
    process.exit(1);
  }
  let bytes;
  try {
    bytes = fs.readFileSync(file);
  } catch (e) {
    fail(file, `cannot read: ${e.message}`);
  }
  let text;
  try {
    text = new TextDecoder('utf-8', {fatal: true}).decode(bytes);
  } catch (e) {
    fail(file, 'not valid UTF-8');
  }
  let doc;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    fail(file, `not JSON: ${e.message}`);
  }

  const schemaPath = path.join(path.dirname(require.resolve('speedscope/package.json')),
                               'dist', 'release', 'file-format-schema.json');
  const schema = JSON.parse(fs.readFileSync(schemaPath, 'utf8'));
  const ajv = new Ajv({allErrors: false, strict: false});
  const validate = ajv.compile(schema);
  if (!validate(doc)) {
    const e = validate.errors[0];
    fail(file, `schema: ${e.instancePath || '/'} ${e.message}`);
  }

  const frames = doc.shared.frames;
  let nsamples = 0;
  doc.profiles.forEach((p, pi) => {
    const where = `/profiles/${pi} (${JSON.stringify(p.name)})`;
    if (!(p.startValue <= p.endValue)) fail(file, `${where}: startValue > endValue`);
    if (p.type !== 'sampled') return;
    if (p.samples.length !== p.weights.length)
      fail(file, `${where}: ${p.samples.length} samples but ${p.weights.length} weights`);
    p.samples.forEach((stack, si) => {
      for (const idx of stack) {
        if (!Number.isInteger(idx) || idx < 0 || idx >= frames.length)
          fail(file, `${where}/samples/${si}: frame index ${idx} out of range 0..${frames.length - 1}`);
      }
    });
    p.weights.forEach((w, wi) => {
      if (!Number.isFinite(w) || w < 0) fail(file, `${where}/weights/${wi}: bad weight ${w}`);
    });
    nsamples += p.samples.length;
  });
  frames.forEach((f, fi) => {
    for (const k of Object.keys(f)) {
      if (f[k] === null) fail(file, `/shared/frames/${fi}/${k} is null`);
    }
  });
  if (doc.activeProfileIndex !== undefined && doc.profiles.length > 0 &&
      !(Number.isInteger(doc.activeProfileIndex) && doc.activeProfileIndex >= 0 &&
        doc.activeProfileIndex < doc.profiles.length))
    fail(file, `activeProfileIndex ${doc.activeProfileIndex} out of range`);

  console.log(`VALID ${file}: ${doc.profiles.length} profiles, ${frames.length} frames, ` +
              `${nsamples} samples`);
  process.exit(0);
}

main();
