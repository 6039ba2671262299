"""The metadata files of a Sentinel-2 SAFE product (compact naming, L1C and L2A), as
complete as GDAL's SENTINEL2 driver needs to open the product and list its 10m / 20m /
60m subdatasets (``SENTINEL2_L2A:<folder>/MTD_MSIL2A.xml:10m:EPSG_32633``).

:func:`product_metadata` writes ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``: product
information (start time, URI, level, baseline), the granule's image files (the driver
finds the band files there), the quantification value, the radiometric offsets from
baseline 04.00 on (``RADIO_ADD_OFFSET`` / ``BOA_ADD_OFFSET``, -1000), special values
and the spectral information of the 13 bands. :func:`tile_metadata` writes the
granule's ``MTD_TL.xml``: the tile's CRS, and its size and upper-left corner at 10, 20
and 60 m (the driver's geocoding of each subdataset). Element names follow ESA's
Sentinel-2 product specification (PSD 14.x); the values are the test patch's.
"""

from __future__ import annotations

#: (band id of the metadata, GDAL name, native GSD, central wavelength in nm)
SPECTRAL = (
    (0, "B1", 60, 442.7), (1, "B2", 10, 492.4), (2, "B3", 10, 559.8), (3, "B4", 10, 664.6),
    (4, "B5", 20, 704.1), (5, "B6", 20, 740.5), (6, "B7", 20, 782.8), (7, "B8", 10, 832.8),
    (8, "B8A", 20, 864.7), (9, "B9", 60, 945.1), (10, "B10", 60, 1373.5),
    (11, "B11", 20, 1613.7), (12, "B12", 20, 2202.4),
)  # fmt: skip
_NS = "https://psd-14.sentinel2.eo.esa.int/PSD"


def _levels(level: str) -> tuple[str, str, str]:
    """``(root element, quantification element, offset list / offset element)``."""
    if level == "L2A":
        return "Level-2A", "BOA_QUANTIFICATION_VALUE", "BOA_ADD_OFFSET_VALUES_LIST/BOA_ADD_OFFSET"
    return "Level-1C", "QUANTIFICATION_VALUE", "Radiometric_Offset_List/RADIO_ADD_OFFSET"


def product_metadata(
    level: str, baseline: str, name: str, start: str, granule: str, image_files: list[str]
) -> str:
    """``MTD_MSI<level>.xml`` of a compact-named product.

    Args:
        level: ``"L1C"`` or ``"L2A"``.
        baseline: processing baseline as in the name (``"0400"``): offsets from 0400 on.
        name: the product name (without ``.SAFE``).
        start: sensing start (``2017-06-13T10:10:31.024Z``).
        granule: the granule's folder name under ``GRANULE``.
        image_files: the granule's image files, relative to the product folder, without
            the ``.jp2`` suffix (as the product lists them).
    """
    root, quant, offset_path = _levels(level)
    wrapper, tag = offset_path.split("/")
    offsets = ""
    if int(baseline) >= 400:
        values = "".join(f'<{tag} band_id="{i}">-1000</{tag}>' for i, *_ in SPECTRAL)
        offsets = f"<{wrapper}>{values}</{wrapper}>"
    files = "".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    spectral = "".join(
        f'<Spectral_Information bandId="{i}" physicalBand="{band}"><RESOLUTION>{gsd}'
        f"</RESOLUTION><Wavelength><MIN unit=\"nm\">{c - 10:g}</MIN><MAX unit=\"nm\">"
        f'{c + 10:g}</MAX><CENTRAL unit="nm">{c:g}</CENTRAL></Wavelength>'
        "</Spectral_Information>"
        for i, band, gsd, c in SPECTRAL
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<n1:{root}_User_Product xmlns:n1="{_NS}/User_Product_{root}.xsd">'
        "<n1:General_Info><Product_Info>"
        f"<PRODUCT_START_TIME>{start}</PRODUCT_START_TIME>"
        f"<PRODUCT_STOP_TIME>{start}</PRODUCT_STOP_TIME>"
        f"<PRODUCT_URI>{name}.SAFE</PRODUCT_URI>"
        f"<PROCESSING_LEVEL>{root}</PROCESSING_LEVEL>"
        f"<PRODUCT_TYPE>S2MSI{level[1:]}</PRODUCT_TYPE>"
        f"<PROCESSING_BASELINE>{baseline[:2]}.{baseline[2:]}</PROCESSING_BASELINE>"
        "<Datatake><SPACECRAFT_NAME>Sentinel-2A</SPACECRAFT_NAME>"
        f"<DATATAKE_SENSING_START>{start}</DATATAKE_SENSING_START>"
        "<SENSING_ORBIT_NUMBER>22</SENSING_ORBIT_NUMBER>"
        "<SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION></Datatake>"
        '<Query_Options completeSingleTile="true"><PRODUCT_FORMAT>SAFE_COMPACT'
        "</PRODUCT_FORMAT></Query_Options>"
        "<Product_Organisation><Granule_List>"
        f'<Granule granuleIdentifier="{granule}" imageFormat="JPEG2000">{files}</Granule>'
        "</Granule_List></Product_Organisation></Product_Info>"
        "<Product_Image_Characteristics>"
        "<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>"
        "<SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>"
        "<Special_Values><SPECIAL_VALUE_TEXT>SATURATED</SPECIAL_VALUE_TEXT>"
        "<SPECIAL_VALUE_INDEX>65535</SPECIAL_VALUE_INDEX></Special_Values>"
        f'<QUANTIFICATION_VALUES_LIST><{quant} unit="none">10000</{quant}>'
        "</QUANTIFICATION_VALUES_LIST>"
        f"{offsets}"
        f"<Spectral_Information_List>{spectral}</Spectral_Information_List>"
        "</Product_Image_Characteristics></n1:General_Info></n1:"
        f"{root}_User_Product>\n"
    )


def tile_metadata(
    level: str, tile_id: str, epsg: int, ulx: float, uly: float, size_10m: int
) -> str:
    """A granule's ``MTD_TL.xml``: CRS, sizes and upper-left corner at 10, 20, 60 m
    (``size_10m``: rows = columns of the 10 m grid)."""
    root = _levels(level)[0]
    sizes = "".join(
        f'<Size resolution="{g}"><NROWS>{size_10m * 10 // g}</NROWS>'
        f"<NCOLS>{size_10m * 10 // g}</NCOLS></Size>"
        for g in (10, 20, 60)
    )
    positions = "".join(
        f'<Geoposition resolution="{g}"><ULX>{ulx:g}</ULX><ULY>{uly:g}</ULY>'
        f"<XDIM>{g}</XDIM><YDIM>-{g}</YDIM></Geoposition>"
        for g in (10, 20, 60)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<n1:{root}_Tile_ID xmlns:n1="{_NS}/S2_PDI_{root}_Tile_Metadata.xsd">'
        f"<n1:General_Info><TILE_ID>{tile_id}</TILE_ID></n1:General_Info>"
        '<n1:Geometric_Info><Tile_Geocoding metadataLevel="Brief">'
        f"<HORIZONTAL_CS_NAME>WGS84 / UTM zone {epsg % 100}N</HORIZONTAL_CS_NAME>"
        f"<HORIZONTAL_CS_CODE>EPSG:{epsg}</HORIZONTAL_CS_CODE>{sizes}{positions}"
        f"</Tile_Geocoding></n1:Geometric_Info></n1:{root}_Tile_ID>\n"
    )
