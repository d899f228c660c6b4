// The official openai npm client against `safesd serve` (tests/cli/test_serve.sh):
// images.generate on /v1/images/generations, then an error the client must surface.
//   node openai_client.js BASE_URL API_KEY
const OpenAI = require('openai').default;

async function main() {
  const [baseURL, apiKey] = process.argv.slice(2);
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60000 });
  const r = await client.images.generate({ prompt: 'cat face, noto emoji', n: 2, size: '64x64', response_format: 'b64_json' });
  if (!Array.isArray(r.data) || r.data.length !== 2) throw new Error('expected 2 images, got ' + JSON.stringify(r).slice(0, 200));
  for (const d of r.data) {
    const png = Buffer.from(d.b64_json, 'base64');
    if (png.subarray(1, 4).toString() !== 'PNG') throw new Error('not a PNG');
  }
  if (!r.safety || r.safety.detectors.flagged !== false) throw new Error('no safety report: ' + JSON.stringify(r.safety));
  let status = 0;
  try {
    await client.images.generate({ prompt: 'cat face', response_format: 'url' });
  } catch (e) {
    status = e.status;
    if (!(e instanceof OpenAI.BadRequestError) || e.param !== 'response_format') throw new Error('url: ' + e);
  }
  if (status !== 400) throw new Error('response_format url was not refused');
  console.log('openai client: 2 images, report, url refused (400, param response_format)');
}
main().catch((e) => { console.error('openai client: ' + e.message); process.exit(1); });
