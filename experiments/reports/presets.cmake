# The report presets (experiments/reports/*.json) compiled into the programs and the Python module
# (experiments/report_command.hpp includes report_presets.inc), so an installed volfeat reproduces the
# reports without the source tree. Included by experiments/ and experiments/python/; writes the file once per
# configure into VOLFEAT_REPORT_PRESETS_DIR, which those targets add to their include path.
include_guard(GLOBAL)
set(VOLFEAT_REPORT_PRESETS_DIR ${PROJECT_BINARY_DIR}/generated CACHE INTERNAL "report_presets.inc's directory")
file(GLOB _volfeat_report_presets CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.json)
set(_volfeat_presets_inc "")
foreach(preset ${_volfeat_report_presets})
  get_filename_component(preset_name ${preset} NAME_WE)
  file(READ ${preset} preset_body)
  string(APPEND _volfeat_presets_inc "{\"${preset_name}\", R\"volfeat_json(${preset_body})volfeat_json\"},\n")
  set_property(DIRECTORY ${PROJECT_SOURCE_DIR} APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${preset})
endforeach()
# file(CONFIGURE) rewrites the file only when its content changes, so a re-configure recompiles nothing.
file(CONFIGURE OUTPUT ${VOLFEAT_REPORT_PRESETS_DIR}/report_presets.inc CONTENT "${_volfeat_presets_inc}" @ONLY)
