"""Every region of the three clouds where the fleet can run, with its zones: the one
table `infra.config` checks regions and zones against.

A region is listed when hosts can be placed there and the private cross-cloud network can
end there: AWS Site-to-Site VPN, Azure VPN Gateway and GCP HA VPN are offered in every
region below. How many zones an environment needs is `config.REDUNDANCY`'s business: a
two-zone region (AWS us-west-1) serves dev and staging but not prod, which fails naming
the zone count.

Sources, compiled 2026-12-03 from the providers' public lists (no cloud API is reachable
from the machines that run the tests, so the table is data, reviewed when a region opens):
- AWS: https://docs.aws.amazon.com/global-infrastructure/latest/regions/aws-regions.html
  and the zone IDs per region (https://docs.aws.amazon.com/ram/latest/userguide/
  working-with-az-ids.html). Zone *names* (us-east-1a) map to physical zones per account,
  and a few accounts see fewer letters; the letters below are the ones AWS offers.
  Opt-in regions must be enabled on the account first.
- Azure: https://learn.microsoft.com/azure/reliability/regions-list (regions with
  availability zones, always "1", "2", "3").
- GCP: https://cloud.google.com/compute/docs/regions-zones (zone letters differ per
  region: us-east1 is b, c, d).
"""

from __future__ import annotations


def _letters(region: str, letters: str, sep: str = "") -> tuple[str, ...]:
    return tuple(f"{region}{sep}{letter}" for letter in letters)


_AWS = {
    "us-east-1": "abcdef", "us-east-2": "abc", "us-west-1": "ac", "us-west-2": "abcd",
    "ca-central-1": "abd", "ca-west-1": "abc", "mx-central-1": "abc", "sa-east-1": "abc",
    "eu-west-1": "abc", "eu-west-2": "abc", "eu-west-3": "abc", "eu-central-1": "abc",
    "eu-central-2": "abc", "eu-north-1": "abc", "eu-south-1": "abc", "eu-south-2": "abc",
    "il-central-1": "abc", "me-south-1": "abc", "me-central-1": "abc", "af-south-1": "abc",
    "ap-east-1": "abc", "ap-south-1": "abc", "ap-south-2": "abc", "ap-southeast-1": "abc",
    "ap-southeast-2": "abc", "ap-southeast-3": "abc", "ap-southeast-4": "abc",
    "ap-southeast-5": "abc", "ap-southeast-7": "abc", "ap-northeast-1": "acd",
    "ap-northeast-2": "abcd", "ap-northeast-3": "abc",
}

_AZURE = (
    "eastus", "eastus2", "centralus", "southcentralus", "westus2", "westus3",
    "canadacentral", "brazilsouth", "mexicocentral", "northeurope", "westeurope", "uksouth",
    "francecentral", "germanywestcentral", "italynorth", "norwayeast", "polandcentral",
    "spaincentral", "swedencentral", "switzerlandnorth", "israelcentral", "qatarcentral",
    "uaenorth", "southafricanorth", "centralindia", "eastasia", "southeastasia", "japaneast",
    "koreacentral", "australiaeast", "newzealandnorth",
)

_GCP = {
    "us-central1": "abcf", "us-east1": "bcd", "us-east4": "abc", "us-east5": "abc",
    "us-south1": "abc", "us-west1": "abc", "us-west2": "abc", "us-west3": "abc",
    "us-west4": "abc", "northamerica-northeast1": "abc", "northamerica-northeast2": "abc",
    "northamerica-south1": "abc", "southamerica-east1": "abc", "southamerica-west1": "abc",
    "europe-central2": "abc", "europe-north1": "abc", "europe-north2": "abc",
    "europe-southwest1": "abc", "europe-west1": "bcd", "europe-west2": "abc",
    "europe-west3": "abc", "europe-west4": "abc", "europe-west6": "abc", "europe-west8": "abc",
    "europe-west9": "abc", "europe-west10": "abc", "europe-west12": "abc",
    "me-central1": "abc", "me-central2": "abc", "me-west1": "abc", "africa-south1": "abc",
    "asia-east1": "abc", "asia-east2": "abc", "asia-northeast1": "abc",
    "asia-northeast2": "abc", "asia-northeast3": "abc", "asia-south1": "abc",
    "asia-south2": "abc", "asia-southeast1": "abc", "asia-southeast2": "abc",
    "australia-southeast1": "abc", "australia-southeast2": "abc",
}

ZONES: dict[str, dict[str, tuple[str, ...]]] = {
    "aws": {region: _letters(region, letters) for region, letters in _AWS.items()},
    "azure": {region: ("1", "2", "3") for region in _AZURE},
    "gcp": {region: _letters(region, letters, "-") for region, letters in _GCP.items()},
}
"""Cloud -> region -> its zones, as the cloud's API names them."""
