// `npm run check:api`: fail if src/api/schema.d.ts is not what `npm run gen:api` makes of
// openapi.json, i.e. someone changed the document (or the generator) without regenerating.
// (Whether openapi.json itself is web-bff's current document: scripts/dump_openapi.py --check.)
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const spa = join(dirname(fileURLToPath(import.meta.url)), '..')
const committed = join(spa, 'src', 'api', 'schema.d.ts')
const temp = mkdtempSync(join(tmpdir(), 'web-spa-api-'))
const fresh = join(temp, 'schema.d.ts')
try {
  const cli = join(spa, 'node_modules', 'openapi-typescript', 'bin', 'cli.js')
  execFileSync(process.execPath, [cli, join(spa, 'openapi.json'), '-o', fresh], {
    cwd: spa,
    stdio: ['ignore', 'ignore', 'inherit'],
  })
  const want = readFileSync(fresh, 'utf8')
  let have = ''
  try {
    have = readFileSync(committed, 'utf8')
  } catch {
    // missing: reported below as out of date
  }
  if (have !== want) {
    const a = have.split('\n')
    const b = want.split('\n')
    let line = 0
    while (line < Math.max(a.length, b.length) && a[line] === b[line]) line++
    console.error(
      `src/api/schema.d.ts is out of date with openapi.json (first difference at line ${line + 1}):\n` +
        `  committed: ${JSON.stringify(a[line] ?? '<end of file>')}\n` +
        `  generated: ${JSON.stringify(b[line] ?? '<end of file>')}\n` +
        'Run `npm run gen:api` (and commit src/api/schema.d.ts), then `npm run typecheck`.',
    )
    process.exitCode = 1
  } else {
    console.log('src/api/schema.d.ts is up to date with openapi.json')
  }
} finally {
  rmSync(temp, { recursive: true, force: true })
}
