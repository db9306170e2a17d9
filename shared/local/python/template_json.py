"""Prints a CloudFormation/SAM template (template.yaml) as JSON.

The template is read with cfn-lint's own decoder, so the short forms of the
intrinsic functions come out in their long JSON forms (`!Ref X` as
{"Ref": "X"}, `!GetAtt X.Arn` as {"Fn::GetAtt": ["X", "Arn"]}, `!Sub "..."`
as {"Fn::Sub": "..."}), exactly as CloudFormation reads them. The SAM
transform is not applied: resources appear as written.

  template_json.py <path>  -> the template as one JSON object on stdout

Exits with status 1 and the decoder's findings on stderr if the file cannot
be read or parsed.
"""

import json
import sys

from cfnlint.decode import decode


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: template_json.py <template.yaml>", file=sys.stderr)
        return 2
    path = sys.argv[1]
    template, matches = decode(path)
    if matches:
        print(f"{path} could not be decoded:", file=sys.stderr)
        for m in matches:
            print(f"  {m}", file=sys.stderr)
        return 1
    if not isinstance(template, dict):
        print(f"{path} is not a template (no mapping at the top)", file=sys.stderr)
        return 1
    json.dump(template, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
