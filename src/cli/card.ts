import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { CliError, EXIT, createOutput, escapeForTerminal } from './output.ts';

const FORMATS = ['text', 'html', 'json'] as const;
type CardFormat = (typeof FORMATS)[number];

/** `factory card <model>@<version>`: the version's model card, as text, HTML (prints well) or JSON. */
export function registerCard(program: Command): void {
  program
    .command('card <model@version>')
    .description(
      "a model version's card: intended use and approved use cases, risk tier, data and classification, metrics against thresholds, limitations, approvals (signature verified), serving, last monitoring window, next revalidation. Exit 0 written; 2 bad input; 3 database unreachable; 6 no such version",
    )
    .option('--format <format>', 'text, html (self-contained, prints well) or json; default text, or as --out ends (.html, .json)')
    .option('--out <file>', 'write the card there instead of stdout')
    .option('--json', 'print JSON (the card itself, or with --out what was written)')
    .action(async (ref: string, opts: { format?: string; out?: string; json?: boolean }) => {
      const out = createOutput(!!opts.json);
      const guessed = opts.out?.endsWith('.html') ? 'html' : opts.out?.endsWith('.json') ? 'json' : opts.json && !opts.out ? 'json' : 'text';
      const format = (opts.format ?? guessed) as CardFormat;
      if (!FORMATS.includes(format)) throw new CliError(`--format ${opts.format}: one of ${FORMATS.join(', ')}`, EXIT.usage);
      if (opts.json && !opts.out && format !== 'json') throw new CliError(`--json prints the card as JSON: drop --format ${format} or add --out`, EXIT.usage);
      const [{ parseModelRef, TraceNotFound }, { loadPolicyPack, policyPackPath }, { withDb }, { loadCardData }, cards] = await Promise.all([
        import('../trace/trace.ts'),
        import('../policy/pack.ts'),
        import('./context.ts'),
        import('../cards/load.ts'),
        import('../cards/card.ts'),
      ]);
      let version: number | undefined;
      try {
        version = parseModelRef(ref).version;
      } catch (err) {
        throw new CliError((err as Error).message, EXIT.usage);
      }
      if (version === undefined) throw new CliError(`name the version: ${ref}@<version>`, EXIT.usage, 'list versions with `npx factory inventory`');
      const outFile = opts.out ? path.resolve(opts.out) : undefined;
      if (outFile && !fs.existsSync(path.dirname(outFile))) throw new CliError(`no directory ${path.dirname(outFile)} for --out`, EXIT.usage);
      const policy = loadPolicyPack(policyPackPath());
      const names = new Map(policy.pack.principals.map((p) => [p.id.toLowerCase(), p.name] as [string, string]));
      let card;
      try {
        card = cards.buildCard(await withDb((db, env) => loadCardData(db, env, ref, policy, new Date(), names)));
      } catch (err) {
        if (err instanceof TraceNotFound) throw new CliError(err.message, EXIT.notFound, 'list versions with `npx factory inventory`');
        throw err;
      }
      const rendered =
        format === 'html' ? cards.renderCardHtml(card) : format === 'json' ? `${JSON.stringify(card, null, 2)}\n` : `${cards.renderCardText(card)}\n`;
      if (outFile) {
        fs.writeFileSync(outFile, rendered);
        out.result(
          { model: card.model.name, version: card.model.version, format, out: outFile, bytes: Buffer.byteLength(rendered) },
          (r) => `model card of ${r.model}@${r.version} written to ${r.out} (${r.format}, ${r.bytes} bytes)`,
        );
        return;
      }
      if (format === 'json') process.stdout.write(rendered);
      else if (format === 'html') process.stdout.write(rendered);
      else process.stdout.write(escapeForTerminal(rendered, { keepNewlines: true }));
    });
}
